# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)
"""Private files on the managed host: secret env files and small state files.

Files are written atomically (temporary file in the same directory, fsync, rename) and are never
readable by anyone but their owner, not even for a moment: the temporary file is created 0600 and
missing parent directories are created 0700. (``AnsibleModule.atomic_move`` applies the umask to a
newly created file, which would leave a secret file 0644 until a later chmod.)

Env files hold ``NAME=value`` lines, as ``docker run --env-file`` reads them: no quoting, the value is
everything after the first ``=``. Blank lines and ``#`` comments are kept as they are.

Private to this collection: no compatibility promise outside it.
"""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import re
import stat
import tempfile

ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class EnvFileError(Exception):
    """The file cannot be read as NAME=value lines. Messages name lines and names, never values."""


def read_text(path):
    """The file's text, or None when it does not exist."""
    try:
        with open(path, "r", encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def _name(lookup, ident):
    try:
        return lookup(ident)[0]
    except KeyError:
        return None


def file_state(path):
    """kind (file, directory, absent, other), mode as four octal digits, uid/gid and their names, sha256 of a file."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return dict(kind="absent")
    if stat.S_ISDIR(st.st_mode):
        kind = "directory"
    elif stat.S_ISREG(st.st_mode):
        kind = "file"
    else:
        kind = "other"
    out = dict(kind=kind, mode="%04o" % stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid,
               owner=_name(pwd.getpwuid, st.st_uid), group=_name(grp.getgrgid, st.st_gid))
    if kind == "file":
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(65536), b""):
                digest.update(block)
        out["sha256"] = digest.hexdigest()
    return out


def ensure_private_dir(directory):
    """Create ``directory`` and its missing parents with mode 0700; existing directories are left alone."""
    missing = []
    directory = os.path.abspath(directory)
    while not os.path.isdir(directory):
        missing.append(directory)
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    for path in reversed(missing):
        os.mkdir(path, 0o700)
        os.chmod(path, 0o700)


def write_private(path, text, mode=0o600):
    """Atomically replace ``path`` with ``text``; the file never exists with a wider mode than ``mode``."""
    directory = os.path.dirname(os.path.abspath(path))
    ensure_private_dir(directory)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".%s." % os.path.basename(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def fix_mode(path, mode=0o600, check_mode=False):
    """Set the file's permission bits to ``mode`` (not in check mode); return True when they differ(ed)."""
    current = stat.S_IMODE(os.stat(path).st_mode)
    if current == mode:
        return False
    if not check_mode:
        os.chmod(path, mode)
    return True


class EnvFile:
    """``NAME=value`` lines, edited in place: existing lines keep their order, new names are appended."""

    def __init__(self, text=None):
        self.lines = []  # each: [name or None, raw text without newline]
        self.values = {}
        for number, raw in enumerate((text or "").splitlines(), start=1):
            stripped = raw.strip()
            if not stripped or stripped.startswith("#"):
                self.lines.append([None, raw])
                continue
            name, sep, value = raw.partition("=")
            name = name.strip()
            if not sep or not ENV_NAME_RE.match(name):
                raise EnvFileError("line %d is not NAME=value" % number)
            if name in self.values:
                raise EnvFileError("%s is set twice (line %d)" % (name, number))
            self.values[name] = value
            self.lines.append([name, raw])

    def names(self):
        return [name for name, dummy in self.lines if name is not None]

    def get(self, name):
        return self.values.get(name)

    def set(self, name, value):
        if name in self.values:
            for line in self.lines:
                if line[0] == name:
                    line[1] = "%s=%s" % (name, value)
        else:
            self.lines.append([name, "%s=%s" % (name, value)])
        self.values[name] = value

    def render(self):
        if not self.lines:
            return ""
        return "\n".join(raw for dummy, raw in self.lines) + "\n"
