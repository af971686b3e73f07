"""The host on a secured cluster: SASL/SCRAM-SHA-512 over TLS with the password from a
file, TLS with server verification, mutual TLS, a zstd-compressed input topic; and a
wrong password or an untrusted certificate reported once, with /health not ready.

A second Tansu of the test's own (own ports and data) with stunnel in front: Tansu 0.6
accepts --cert/--key but serves plain TCP, so stunnel terminates TLS and Tansu
advertises stunnel's port, so that every connection goes through TLS."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streamhost_kit.events import event_set, payloads
from streamhost_kit.stack import ROOT, Host, brief_generator, free_port, port_open
from streamhost_kit.util import wait_until

CACHE = Path(os.environ.get("STREAMHOST_CACHE", Path.home() / ".cache" / "streamhost"))
TANSU = CACHE / "tansu-0.6.0" / "bin" / "tansu"
# The brief's generator, unchanged, its KafkaProducer given the cluster's security.
SECURED_GENERATOR = """
import os, runpy, sys
import kafka
plain = kafka.KafkaProducer
kafka.KafkaProducer = lambda **kw: plain(
    security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", ssl_cafile=os.environ["CA"],
    sasl_plain_username=os.environ["USER"], sasl_plain_password=os.environ["PASSWORD"], **kw)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""
TOPICS = ["my_events", "enriched_events", "dlq", "country_event_averages"]
USER, PASSWORD = "streamhost", "Sc-ram-pw-4711"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d: Path, name: str) -> None:
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=d)


def make_cert(d: Path, name: str, ca: str, san: str) -> None:
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
    (d / f"{name}.ext").write_text(f"subjectAltName = {san}\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=d)


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("certs")
    make_ca(d, "ca")
    make_ca(d, "rogue-ca")  # signed nothing the broker shows
    make_cert(d, "server", "ca", "IP:127.0.0.1,DNS:localhost")
    make_cert(d, "client", "ca", "DNS:streamhost")
    return d


def end(p: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 30 s."""
    p.terminate()
    try:
        p.wait(30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


class SecureBroker:
    """Tansu on a plain port reachable only from here, stunnel on the advertised TLS port."""

    def __init__(self, d: Path, certs: Path, sasl: bool, mutual: bool):
        self.dir, self.certs, self.sasl, self.mutual = d, certs, sasl, mutual
        self.plain, self.tls = free_port(), free_port()
        self.procs: list[subprocess.Popen] = []

    def tansu(self, advertised: int, authentication: bool) -> subprocess.Popen:
        args = [str(TANSU), "broker", "--listener-url", f"tcp://127.0.0.1:{self.plain}",
                "--advertised-listener-url", f"tcp://127.0.0.1:{advertised}", "--storage-engine", "sqlite://tansu.db"]
        if authentication:
            args.append("--authentication")
        log = open(self.dir / "tansu.log", "ab")
        p = subprocess.Popen(args, cwd=self.dir, stdout=log, stderr=subprocess.STDOUT)
        wait_until("the test's Tansu", lambda: port_open(self.plain), timeout=30, interval=0.2)
        return p

    def start(self) -> "SecureBroker":
        # Users and topics first, on a plain broker: with --authentication on, Tansu
        # serves nobody until a user exists.
        setup = self.tansu(self.plain, authentication=False)
        try:
            if self.sasl:
                subprocess.run([str(TANSU), "user", "create", "--broker", f"tcp://127.0.0.1:{self.plain}",
                                "--mechanism", "scram512", USER, PASSWORD], check=True, capture_output=True, timeout=30)
            admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{self.plain}"})
            for f in admin.create_topics([NewTopic(t, 3, 1) for t in TOPICS]).values():
                f.result(30)
            del admin  # before its broker goes away
        finally:
            setup.terminate()
            setup.wait(30)
        self.procs.append(self.tansu(self.tls, authentication=self.sasl))
        conf = self.dir / "stunnel.conf"
        conf.write_text(
            "foreground = yes\npid =\n[kafka]\n"
            f"accept = 127.0.0.1:{self.tls}\nconnect = 127.0.0.1:{self.plain}\n"
            f"cert = {self.certs / 'server.pem'}\nkey = {self.certs / 'server.key'}\n"
            + (f"verify = 2\nCAfile = {self.certs / 'ca.pem'}\n" if self.mutual else ""))
        log = open(self.dir / "stunnel.log", "ab")
        self.procs.append(subprocess.Popen(["stunnel4", str(conf)], stdout=log, stderr=subprocess.STDOUT))
        wait_until("stunnel", lambda: port_open(self.tls), timeout=30, interval=0.2)
        return self

    def stop(self) -> None:
        for p in reversed(self.procs):
            end(p)

    def client(self, ca: str = "ca", password: str = PASSWORD) -> dict[str, str]:
        """librdkafka options of a client of this broker."""
        conf = {"ssl.ca.location": str(self.certs / f"{ca}.pem")}
        if self.sasl:
            conf |= {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
                     "sasl.username": USER, "sasl.password": password}
        else:
            conf["security.protocol"] = "SSL"
        if self.mutual:
            conf |= {"ssl.certificate.location": str(self.certs / "client.pem"),
                     "ssl.key.location": str(self.certs / "client.key")}
        return conf

    def host_env(self, conf: dict[str, str]) -> dict[str, str]:
        """The host's settings: the brokers, and each option as its own variable."""
        env = {"STREAMHOST_KAFKA__BROKERS": f"127.0.0.1:{self.tls}", "STREAMHOST_WINDOWS__ENABLED": "false"}
        for key, value in conf.items():
            env["STREAMHOST_KAFKA_CLIENT_" + key.upper().replace(".", "_")] = value
        return env

    def count(self, topic: str, conf: dict[str, str]) -> int:
        c = Consumer({"bootstrap.servers": f"127.0.0.1:{self.tls}", "group.id": "security-probe", **conf})
        try:
            return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(3))
        finally:
            c.close()


@pytest.fixture
def broker(tmp_path: Path, certs: Path, request):
    sasl, mutual = request.param
    b = SecureBroker(tmp_path, certs, sasl=sasl, mutual=mutual).start()
    yield b
    b.stop()
    print(f"--- test broker logs ---\n{(tmp_path / 'tansu.log').read_text(errors='replace')[-2000:]}\n"
          f"{(tmp_path / 'stunnel.log').read_text(errors='replace')[-2000:]}")


def produce_events(b: SecureBroker, conf: dict[str, str], compression: str = "none") -> int:
    events, rejects = event_set(seed=11, n=300)
    values = payloads(events + rejects) + [b"not json", b'{"user_id": 1}']
    p = Producer({"bootstrap.servers": f"127.0.0.1:{b.tls}", "compression.type": compression, "linger.ms": 20, **conf})
    for i, v in enumerate(values):
        p.produce("my_events", value=v, key=str(i))
    assert p.flush(30) == 0, "not every event was delivered"
    return len(values)


def host_log_secrets(host: Host) -> list[str]:
    return [s for s in (PASSWORD, "wrong-" + PASSWORD) if s in host.log()]


SCRAM_TLS = pytest.param((True, False), id="sasl_ssl-scram-sha-512")
TLS = pytest.param((False, False), id="tls")
MUTUAL_TLS = pytest.param((False, True), id="mutual-tls")


@pytest.mark.parametrize("broker", [SCRAM_TLS, TLS, MUTUAL_TLS], indirect=True)
def test_every_event_is_accounted_for_through_the_secured_cluster(broker: SecureBroker, hosts, tmp_path: Path):
    conf = broker.client()
    # The input compressed with zstd on one of the runs.
    n = produce_events(broker, conf, compression="zstd" if broker.mutual else "none")
    env = broker.host_env(conf)
    if broker.sasl:
        # The password as a Docker/Kubernetes secret: a file, with its trailing newline.
        secret = tmp_path / "kafka_password"
        secret.write_text(PASSWORD + "\n")
        del env["STREAMHOST_KAFKA_CLIENT_SASL_PASSWORD"]
        env["STREAMHOST_KAFKA_CLIENT_SASL_PASSWORD_FILE"] = str(secret)
    (host,) = hosts(1, **env)

    def accounted():
        got = broker.count("enriched_events", conf) + broker.count("dlq", conf)
        return got if got >= n else None

    assert wait_until(f"{n} records on enriched_events + dlq", accounted, timeout=120) == n
    assert broker.count("dlq", conf) > 0, "the rejects and the undecodable records"
    assert host.health_status() == 200
    assert not host_log_secrets(host)
    for path in ("/health", "/metrics", "/plugins"):
        assert PASSWORD not in host.get(path)


class SecureClickHouse:
    """A ClickHouse of the test's own, its Kafka tables on the secured broker: the
    server's <kafka> section holds the security settings (docs/howto/operate.md)."""

    def __init__(self, d: Path, broker: SecureBroker):
        self.dir, self.http, self.tcp = d, free_port(), free_port()
        for sub in ("data", "tmp", "user_files", "format_schemas", "log"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        config = (ROOT / "scripts" / "lib" / "clickhouse-config.xml").read_text()
        config = config.replace("@DIR@", str(d)).replace("@HTTP@", str(self.http)).replace("@TCP@", str(self.tcp))
        security = "".join(f"<{k.replace('.', '_')}>{v}</{k.replace('.', '_')}>" for k, v in broker.client().items())
        config = config.replace("<kafka>", "<kafka>" + security, 1)
        (d / "config.xml").write_text(config)
        (d / "users.xml").write_text((ROOT / "scripts" / "lib" / "clickhouse-users.xml").read_text())
        # The stack's librdkafka for ClickHouse 18.16 (scripts/stack: Debian's cannot talk to Tansu).
        requirements = hashlib.sha256((ROOT / "tests" / "requirements.txt").read_bytes()).hexdigest()[:12]
        env = {**os.environ, "LD_LIBRARY_PATH": str(CACHE / f"librdkafka-{requirements}")}
        log = open(d / "log" / "stdout.log", "ab")
        self.proc = subprocess.Popen(["clickhouse-server", f"--config-file={d / 'config.xml'}"], cwd=d, env=env,
                                     stdout=log, stderr=subprocess.STDOUT)
        wait_until("the test's ClickHouse", lambda: port_open(self.http), timeout=60, interval=0.5)
        schema = subprocess.run([str(ROOT / "sql" / "render"), "ch18", f"127.0.0.1:{broker.tls}"],
                                capture_output=True, text=True, check=True).stdout
        subprocess.run(["clickhouse-client", "--host", "127.0.0.1", "--port", str(self.tcp), "--multiquery"],
                       input=schema, text=True, check=True, capture_output=True, timeout=60)

    def value(self, sql: str) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/", data=sql.encode(), timeout=30) as r:
            return int(r.read().decode().strip())

    def stop(self) -> None:
        end(self.proc)


@pytest.mark.parametrize("broker", [SCRAM_TLS], indirect=True)
def test_the_brief_generator_through_scram_and_tls_lands_whole_in_clickhouse(broker: SecureBroker, hosts,
                                                                              tmp_path: Path):
    # Generator → SASL_SSL → host → SASL_SSL → ClickHouse's Kafka tables, every hop
    # through stunnel with the test's CA and the SCRAM user.
    clickhouse = SecureClickHouse(tmp_path / "clickhouse", broker)
    try:
        # The host's settings are the example of docs/reference/config.md#security, as
        # written there, with this cluster's address and CA, and the password from a file.
        docs = (ROOT / "docs" / "reference" / "config.md").read_text()
        example = re.search(r"## Security\n.*?```toml\n(.*?)```", docs, re.S).group(1)
        example = (example.replace("broker1.example.com:9093", f"127.0.0.1:{broker.tls}")
                   .replace("/etc/streamhost/ca.pem", str(broker.certs / "ca.pem")))
        assert f'"sasl.username" = "{USER}"' in example, example
        (tmp_path / "streamhost.toml").write_text(example + "\n[windows]\nenabled = false\n")
        (tmp_path / "kafka_password").write_text(PASSWORD + "\n")
        (host,) = hosts(1, STREAMHOST_CONFIG=str(tmp_path / "streamhost.toml"), STREAMHOST_KAFKA__BROKERS=None,
                        STREAMHOST_KAFKA_CLIENT_SASL_PASSWORD_FILE=str(tmp_path / "kafka_password"))
        seconds = 35  # past the generator's schema change at 30 s
        env = {**os.environ, "CA": str(broker.certs / "ca.pem"), "USER": USER, "PASSWORD": PASSWORD}
        run = subprocess.run([sys.executable, "-c", SECURED_GENERATOR, str(brief_generator()), "--duration", str(seconds),
                              "--rps", "10", "--kafka_broker", f"127.0.0.1:{broker.tls}"],
                             env=env, capture_output=True, text=True, timeout=seconds + 60, check=True)
        sent = int(re.search(r"Sent (\d+) events", run.stdout).group(1))
        assert sent >= seconds * 10 - 10
        assert broker.count("my_events", broker.client()) == sent

        def landed() -> int | None:
            n = (clickhouse.value("SELECT count() FROM events_db.events FINAL")
                 + clickhouse.value("SELECT count() FROM events_db.dlq_table FINAL"))
            return n if n >= sent else None

        assert wait_until(f"{sent} events in events + dlq_table", landed, timeout=120, interval=1) == sent
        with_device = clickhouse.value("SELECT count() FROM events_db.events WHERE device_type != ''")
        rejected = clickhouse.value("SELECT count() FROM events_db.dlq_table FINAL")
        print(f"generator over SCRAM/TLS: {sent} sent, {sent - rejected} in events ({with_device} with device_type), "
              f"{rejected} in dlq_table")
        assert rejected > 0 and with_device > 0
        assert host.health_status() == 200
    finally:
        clickhouse.stop()


@pytest.mark.parametrize("broker", [SCRAM_TLS], indirect=True)
def test_a_wrong_password_is_one_clear_error_and_not_ready(broker: SecureBroker, tmp_path: Path, plugin_dir: Path):
    env = broker.host_env(broker.client(password="wrong-" + PASSWORD))
    host = Host(tmp_path, plugin_dir, name="wrong-password", **env).start(ready=False)
    try:
        assert_refused(host, "Kafka authentication failed")
    finally:
        host.stop()


@pytest.mark.parametrize("broker", [TLS], indirect=True)
def test_an_untrusted_certificate_is_one_clear_error_and_not_ready(broker: SecureBroker, tmp_path: Path, plugin_dir: Path):
    env = broker.host_env(broker.client(ca="rogue-ca"))
    host = Host(tmp_path, plugin_dir, name="untrusted", **env).start(ready=False)
    try:
        assert_refused(host, "Kafka TLS handshake failed")
    finally:
        host.stop()


def assert_refused(host: Host, cause: str) -> None:
    wait_until(f"'{cause}' in the host's log", lambda: cause in host.log(), timeout=30, interval=0.5)
    # librdkafka retries every few hundred milliseconds meanwhile, from every client.
    time.sleep(10)
    assert host.health_status() == 503
    log = host.log()
    lines = [line for line in log.splitlines() if cause in line]
    assert len(lines) == 1, "\n".join(lines)
    assert "ERROR" in lines[0], lines[0]
    errors = [line for line in log.splitlines() if "ERROR" in line]
    assert len(errors) <= 3, "\n".join(errors)
    assert not host_log_secrets(host)
    print(lines[0])


def test_secrets_are_not_in_the_help(tmp_path: Path):
    from streamhost_kit.stack import HOST_BIN  # noqa: PLC0415

    env = {**os.environ, "STREAMHOST_KAFKA_CLIENT_SASL_PASSWORD": PASSWORD}
    out = subprocess.run([str(HOST_BIN), "run", "--help"], env=env, capture_output=True, text=True, check=True)
    assert "STREAMHOST_KAFKA_CLIENT_SASL_PASSWORD" in out.stdout
    assert PASSWORD not in out.stdout + out.stderr
