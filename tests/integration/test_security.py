"""The host on a secured cluster: SASL/SCRAM-SHA-512 over TLS with the password from a
file, TLS with server verification, mutual TLS, a zstd-compressed input topic; and a
wrong password or an untrusted certificate reported once, with /health not ready.

A second Tansu of the test's own (own ports and data) with stunnel in front: Tansu 0.6
accepts --cert/--key but serves plain TCP, so stunnel terminates TLS and Tansu
advertises stunnel's port, so that every connection goes through TLS."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streamhost_kit.events import event_set, payloads
from streamhost_kit.stack import Host, free_port, port_open
from streamhost_kit.util import wait_until

TANSU = Path(os.environ.get("STREAMHOST_CACHE", Path.home() / ".cache" / "streamhost")) / "tansu-0.6.0" / "bin" / "tansu"
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
            p.terminate()
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

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
