import sys

from demopose.cli import main

sys.exit(main())
