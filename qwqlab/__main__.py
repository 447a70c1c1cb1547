import sys

from qwqlab.cli import main

sys.exit(main())
