"""A real Spark Connect server for the tests: pyspark's own, on Debian's OpenJDK 17.

`spark-submit` runs the Connect server class in the foreground (it `exec`s java, so the process
we start is the Java process and its PID is the one we kill). It listens on 127.0.0.1 on a free
port, the driver binds to loopback, the UI is off, and nothing is downloaded: the server classes
ship in the pyspark wheel. Its JVM runs in a non-UTC zone on purpose (Asia/Shanghai): the backend
must set the session's time zone itself, and the tests show it does.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SparkServer", "java_home", "spark_connect_server"]

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
JVM_ZONE = "Asia/Shanghai"
START_SECONDS = 180.0
# The JIT's quick tier only: a test server's thousands of small, different queries are mostly
# planning, code generation and class loading, and on two cores the optimising compiler's own
# work cost more than it saved (the fuzz comparison's server CPU about a third lower). Java's
# arithmetic is the same in every tier, so the answers are too.
JIT = "-XX:TieredStopAtLevel=1"


@dataclass(frozen=True)
class SparkServer:
    remote: str  # sc://127.0.0.1:<port>
    pid: int
    log: Path


def java_home() -> str | None:
    """JAVA_HOME, or the JDK/JRE that `java` on the PATH belongs to (Debian's OpenJDK 17)."""
    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    java = shutil.which("java")
    if java is None:
        return None
    return str(Path(os.path.realpath(java)).parent.parent)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(remote: str) -> bool:
    from pyspark.sql import SparkSession

    try:
        session = SparkSession.builder.remote(remote).create()
        try:
            return session.sql("SELECT 1").collect()[0][0] == 1
        finally:
            session.stop()
    except Exception:
        return False


@contextmanager
def spark_connect_server(work: Path, *, cores: int = 2, memory: str = "2g") -> Iterator[SparkServer]:
    """Start a Spark Connect server, wait until a session answers, stop it by PID at the end.

    2 GB of heap: Spark's SQL parser (ANTLR) caches what it learnt of every query it parsed and
    never forgets, and a thousand different fuzzed queries, four at a time, overflowed 1 GB."""
    import pyspark

    home = java_home()
    if home is None:
        raise RuntimeError("no Java found: install Debian's openjdk-17-jre-headless (make sysdeps)")
    spark_home = Path(pyspark.__file__).parent
    port = _free_port()
    work.mkdir(parents=True, exist_ok=True)
    log = work / "spark-connect.log"
    env = {
        **os.environ,
        "JAVA_HOME": home,
        "SPARK_HOME": str(spark_home),
        "PYSPARK_PYTHON": sys.executable,  # Python UDFs on the executors (Spark registration)
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOCAL_DIRS": str(work / "local"),
        "TZ": JVM_ZONE,
    }
    command = [
        str(spark_home / "bin" / "spark-submit"),
        "--class", SERVER_CLASS,
        "--master", f"local[{cores}]",
        "--driver-memory", memory,
        "--driver-java-options", f"-Duser.timezone={JVM_ZONE} -Djava.io.tmpdir={work} {JIT}",
        "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
        "--conf", f"spark.connect.grpc.binding.port={port}",
        "--conf", "spark.driver.host=127.0.0.1",
        "--conf", "spark.driver.bindAddress=127.0.0.1",
        "--conf", "spark.ui.enabled=false",
        "--conf", f"spark.sql.warehouse.dir={work / 'warehouse'}",
        "--conf", "spark.sql.adaptive.enabled=false",  # small test data: fewer stages per query
        "--name", "sandbox-tests",
        "spark-internal",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=work)
    remote = f"sc://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the Spark Connect server exited ({process.returncode}); see {log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Spark Connect server did not answer within {START_SECONDS:.0f} s; see {log}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    pass
            except OSError:
                time.sleep(0.5)
                continue
            if _answers(remote):
                break
            time.sleep(0.5)
        yield SparkServer(remote, process.pid, log)
    finally:
        _stop(process)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the Java process by its PID, SIGKILL it if it lingers."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
