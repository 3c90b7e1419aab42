"""`ganglion passwd` writes the password file the broker checks: real mosquitto_pub clients
log in with the right password and are refused with a wrong one or none."""
import os
import subprocess
import tempfile
import unittest

from support import GANGLION, EdgeProcess

ITER = "1000"  # fast hashing for tests; the default is 210000


def run(*args, stdin=None):
    return subprocess.run([GANGLION, *args], input=stdin, capture_output=True, text=True,
                          timeout=30)


def mqtt_port(edge):
    url = edge.endpoints["mqtt"][0]
    return url.rsplit(":", 1)[1]


def pub(port, *args):
    return subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-q", "1",
                           "-t", "passwd/test", "-m", "hello", "-i", "passwd-test", *args],
                          capture_output=True, text=True, timeout=20)


class PasswdTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ganglion-passwd-")
        self.file = os.path.join(self.tmp.name, "passwords")

    def tearDown(self):
        self.tmp.cleanup()

    def read(self):
        with open(self.file) as f:
            return f.read()

    def test_create_add_change_and_delete(self):
        r = run("passwd", "--create", self.file, "alice", "--password", "a1", "--iterations", ITER)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(self.read(), r"^alice:\$pbkdf2-sha512\$1000\$")
        # From stdin (not a terminal: the first line), as a script would pipe it.
        r = run("passwd", self.file, "bob", "--iterations", ITER, stdin="b1\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("bob:", self.read())
        before = self.read()
        r = run("passwd", self.file, "bob", "--password", "b2", "--iterations", ITER)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotEqual(before, self.read())
        r = run("passwd", self.file, "--delete", "alice")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("alice:", self.read())
        self.assertIn("bob:", self.read())

    def test_errors_and_exit_codes(self):
        # No file yet and no --create: runtime failure with a hint.
        r = run("passwd", self.file, "alice", "--password", "x")
        self.assertEqual(r.returncode, 1)
        self.assertIn("--create", r.stderr)
        self.assertEqual(run("passwd").returncode, 2)  # missing FILE
        run("passwd", "--create", self.file, "alice", "--password", "x", "--iterations", ITER)
        self.assertEqual(run("passwd", self.file).returncode, 2)  # missing USER
        self.assertEqual(run("passwd", self.file, "bad:name", "--password", "x").returncode, 2)
        self.assertEqual(run("passwd", self.file, "carol", stdin="").returncode, 2)  # no password
        self.assertEqual(run("passwd", self.file, "--delete", "nobody").returncode, 1)
        self.assertEqual(run("passwd", self.file, "x", "--password", "x", "--iterations", "0").returncode, 2)

    def test_broker_accepts_the_right_password_only(self):
        r = run("passwd", "--create", self.file, "sensor", "--password", "s3cret", "--iterations", ITER)
        self.assertEqual(r.returncode, 0, r.stderr)
        with EdgeProcess("--mqtt.listeners", "tcp://127.0.0.1:0", "--mqtt.password_file", self.file,
                         "--mqtt.allow_anonymous", "false") as edge:
            port = mqtt_port(edge)
            ok = pub(port, "-u", "sensor", "-P", "s3cret")
            self.assertEqual(ok.returncode, 0, ok.stderr)
            wrong = pub(port, "-u", "sensor", "-P", "nope")
            self.assertNotEqual(wrong.returncode, 0)
            anonymous = pub(port)
            self.assertNotEqual(anonymous.returncode, 0)
            unknown = pub(port, "-u", "ghost", "-P", "s3cret")
            self.assertNotEqual(unknown.returncode, 0)


if __name__ == "__main__":
    unittest.main()
