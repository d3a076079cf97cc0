"""A Spark driver's entry point, for spark-submit and SparkApplications (kind):

    spark-submit /opt/mdp/mdp/shell/spark_main.py bronze_to_silver --run-id R [--since .. --until ..]

It runs `mdp stage <name> ...` in the driver, so a Spark stage behaves exactly as it does from the CLI.
"""

import sys

from mdp.shell.cli import main

if __name__ == "__main__":
    sys.argv = [sys.argv[0], "stage", *sys.argv[1:]]
    main()
