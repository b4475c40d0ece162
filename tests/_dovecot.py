"""A real Dovecot IMAP server for the mail source's tests, on a free loopback port.

Debian's ``dovecot-imapd`` (``scripts/install-dovecot.sh`` installs it when
missing).  The package's own service is not used: each server gets a temp
config, a temp maildir and a passwd-file with one user, and runs in the
foreground (``dovecot -F -c <config>``) as a child process.

    server = DovecotServer(tmp_path).start()
    server.load("Lists/maven", [raw_bytes, ...])   # IMAP APPEND, as a client would
    server.url                                      # imap://hub:secret@127.0.0.1:<port>
    server.stop()

Dovecot refuses mail access as UID 0, so when the tests run as root the mail
store belongs to an unprivileged user (``nobody``) and lives, with the
passwd-file, in its own temp directory outside pytest's 0700 tree, where
that user and Dovecot's auth process can reach it.  It is
removed on ``stop()``.
"""

from __future__ import annotations

import imaplib
import os
import pwd
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from creative_hub.testing.servers import Server, ServerError, free_port, wait_for_port

__all__ = ["DovecotServer", "dovecot_binary", "start"]

INSTALL_HINT = "dovecot not found: run scripts/install-dovecot.sh (apt-get install dovecot-imapd)"
USER, PASSWORD = "hub", "secret"  # the one mail user of a test server


def dovecot_binary() -> str:
    """The path of ``dovecot``, or ServerError saying how to get it."""
    found = shutil.which("dovecot") or ("/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None)
    if found is None:
        raise ServerError(INSTALL_HINT)
    return found


class DovecotServer(Server):
    """One dovecot master process with its own config, maildir and port."""

    name = "dovecot"

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        super().__init__(workdir)
        self.binary = dovecot_binary()
        self.port = port or free_port()
        self.user, self.password = USER, PASSWORD
        self._own_mail_root: str | None = None
        if os.geteuid() == 0:
            # Mail processes may not run as root: use nobody, in a dir nobody can reach.
            who = pwd.getpwnam("nobody")
            self.mail_uid, self.mail_gid = who.pw_uid, who.pw_gid
            self._own_mail_root = tempfile.mkdtemp(prefix="creative-hub-dovecot-")
            os.chmod(self._own_mail_root, 0o755)
            self.mail_root = Path(self._own_mail_root)
        else:
            self.mail_uid, self.mail_gid = os.geteuid(), os.getegid()
            self.mail_root = self.workdir / "mail"
        (self.mail_root / USER).mkdir(parents=True, exist_ok=True)
        os.chown(self.mail_root / USER, self.mail_uid, self.mail_gid)
        self.config_path = self.workdir / "dovecot.conf"
        self._write_config()

    @property
    def url(self) -> str:
        return f"imap://{self.user}:{self.password}@127.0.0.1:{self.port}"

    def _write_config(self) -> None:
        run = self.workdir / "run"
        run.mkdir(exist_ok=True)
        # The auth process (user dovecot when root) must read it: keep it beside the mail.
        users = self.mail_root / "users"
        users.write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
        me = pwd.getpwuid(os.geteuid()).pw_name
        # As non-root every service runs as the invoking user ("rootless" mode).
        internal = "dovecot" if os.geteuid() == 0 else me
        login = "dovenull" if os.geteuid() == 0 else me
        self.config_path.write_text(
            f"""\
base_dir = {run}
state_dir = {self.workdir / "state"}
log_path = {self.workdir / "dovecot.log"}
instance_name = creative-hub-test-{self.port}
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal}
default_login_user = {login}
first_valid_uid = {min(self.mail_uid, 500)}
mail_location = maildir:{self.mail_root}/%u
mail_uid = {self.mail_uid}
mail_gid = {self.mail_gid}
namespace inbox {{
  inbox = yes
  separator = /
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {users}
}}
userdb {{
  driver = static
  args = uid={self.mail_uid} gid={self.mail_gid} home={self.mail_root}/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
}}
service submission-login {{
  inet_listener submission {{
    port = 0
  }}
}}
"""
        )
        (self.workdir / "state").mkdir(exist_ok=True)

    def command(self) -> Sequence[str]:
        return [self.binary, "-F", "-c", str(self.config_path)]

    def wait_ready(self) -> None:
        wait_for_port(self.port, proc=self.proc)

    def load(self, mailbox: str, messages: Iterable[bytes]) -> int:
        """Create ``mailbox`` (``/``-separated) and APPEND ``messages``; returns how many."""
        n = 0
        with imaplib.IMAP4("127.0.0.1", self.port) as imap:
            imap.login(self.user, self.password)
            if mailbox.upper() != "INBOX":
                imap.create(_quote(mailbox))
            for raw in messages:
                typ, data = imap.append(_quote(mailbox), "(\\Seen)", None, raw)
                if typ != "OK":
                    raise ServerError(f"APPEND to {mailbox} failed: {data!r}")
                n += 1
            imap.logout()
        return n

    def stop(self, timeout: float = 30.0) -> None:
        super().stop(timeout)
        if self._own_mail_root is not None:
            shutil.rmtree(self._own_mail_root, ignore_errors=True)
            self._own_mail_root = None


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def start(workdir: Path) -> Server:
    """Start a dovecot in ``workdir`` and return it once it listens."""
    return DovecotServer(workdir).start()
