import sys

from harness.examples.build import main

sys.exit(main())
