import sys

from facecluster.cli import main

sys.exit(main())
