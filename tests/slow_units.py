"""A test's Spark worker plug-in (`spark.python.daemon.module slow_units`, set in a spark-defaults.conf that the
test points SPARK_CONF_DIR at): every unit the label job's workers start is announced by a file
`started-<pid>-<unit>` in SLOW_UNITS_DIR and takes SLOW_UNITS_S seconds longer, so that a test can kill a
Python worker while it is inside a unit. Nothing in the project knows of it."""
import os
import time
from pathlib import Path


def install() -> None:
    from pubmed_rct.literature import worker
    label_unit = worker.label_unit

    def announced(unit, settings):
        (Path(os.environ["SLOW_UNITS_DIR"]) / f"started-{os.getpid()}-{unit['index']}").touch()
        time.sleep(float(os.environ.get("SLOW_UNITS_S", "2")))
        return label_unit(unit, settings)
    worker.label_unit = announced


if __name__ == "__main__":
    install()
    from pyspark import daemon
    daemon.manager()
