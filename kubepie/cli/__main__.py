import sys

from kubepie.cli import main

sys.exit(main())
