#!/usr/bin/python
# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: owlat_files
short_description: Put a role's directories and small files in place in one module run
version_added: 0.1.0
description:
  - Ensures directories exist and files have the given content, owner, group and mode, in one call instead
    of one M(ansible.builtin.template) or M(ansible.builtin.copy) run per file. Meant for the handful of
    configuration files a role renders on the controller (with P(ansible.builtin.template#lookup)).
  - Files are replaced atomically and never exist with a wider mode than requested, not even for a moment.
  - Secret content (O(files[].secret_content)) is never shown, in the diff or anywhere else.
  - Returns the paths that changed, so that the play restarts or reloads only the services concerned.
author:
  - owlat.selfhost maintainers (@owlat)
options:
  directories:
    description: Directories to create if missing; owner, group and mode are set on each listed one.
    type: list
    elements: dict
    default: []
    suboptions:
      path: {description: Absolute path., type: path, required: true}
      owner: {description: Owner (name or numeric id); omitted = unchanged (root for a new one)., type: str}
      group: {description: Group (name or numeric id); omitted = unchanged., type: str}
      mode: {description: Mode as an octal string (V("0755"))., type: str, default: "0755"}
  files:
    description: Files and their content. Give exactly one of O(files[].content), O(files[].secret_content), O(files[].src).
    type: list
    elements: dict
    default: []
    suboptions:
      path: {description: Absolute path; the parent directory must exist (or be listed in O(directories)).,
             type: path, required: true}
      content: {description: Text content., type: str}
      secret_content: {description: Text content that is never displayed (no diff either)., type: str}
      src: {description: A file already on the host whose content is copied (for example a CA certificate)., type: path}
      owner: {description: Owner (name or numeric id); omitted = unchanged (root for a new file)., type: str}
      group: {description: Group (name or numeric id); omitted = unchanged., type: str}
      mode: {description: Mode as an octal string (V("0644"))., type: str, default: "0644"}
      validate:
        description: Command that checks new content before it replaces the file; C(%s) is a temporary copy
          (for example V(promtool check config --syntax-only %s)). A non-zero exit fails the task and leaves the file.
        type: str
attributes:
  check_mode:
    support: full
    description: Reports what would change and writes nothing; an owner or group that does not exist yet (its package
      is installed in the same run) or a missing O(files[].src) counts as a change instead of an error.
  diff_mode:
    support: full
    description: Shows each changed file before and after (secret files only by name).
  idempotent:
    support: full
    description: Nothing is written when content, owner, group and mode already match.
  platform:
    support: full
    platforms: posix
    description: Uses POSIX owners, groups and modes.
notes:
  - Services are not restarted; act on RV(changed_paths).
"""

EXAMPLES = r"""
- name: Exporter configuration in one run
  owlat.selfhost.owlat_files:
    directories:
      - {path: /var/lib/owlat/monitoring/targets, mode: "0755"}
    files:
      - path: /etc/prometheus/prometheus.yml
        content: "{{ lookup('ansible.builtin.template', 'prometheus.yml.j2') }}"
        group: prometheus
        mode: "0640"
      - path: /etc/prometheus/owlat-remote-write-password
        secret_content: "{{ vault_metrics_password }}"
        group: prometheus
        mode: "0640"
      - path: /etc/prometheus/owlat-probe-ca.crt
        src: /var/lib/docker/volumes/owlat-caddy-data/_data/caddy/pki/authorities/local/root.crt
  register: files

- name: Reload Prometheus when its configuration changed
  ansible.builtin.systemd_service:
    name: prometheus
    state: reloaded
  when: "'/etc/prometheus/prometheus.yml' in files.changed_paths"
"""

RETURN = r"""
changed_paths:
  description: Directories and files that were (or in check mode would be) created or changed.
  returned: always
  type: list
  elements: str
  sample: ["/etc/prometheus/prometheus.yml"]
state:
  description:
    - Every listed directory and file as it is after the run (in check mode, as it is now), keyed by path, in the
      shape C(owlat.selfhost.owlat_stack_state) reports files in; no content, only a sha256 of a file's content
      (none for a O(files[].secret_content) file, which is therefore always stale against it).
    - Lets a play that writes the same files twice in one run compare with what it wrote last
      (P(owlat.selfhost.files_stale#filter)) instead of with a state read before.
  returned: always
  type: dict
  sample: {"/etc/owlat/acme/caddy/Caddyfile": {"kind": "file", "mode": "0644", "uid": 0, "gid": 0,
           "owner": "root", "group": "root", "sha256": "5f2b…"}}
"""

import grp
import os
import pwd
import shlex
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.owlat.selfhost.plugins.module_utils._files import file_state, read_text, write_private


class Unknown(Exception):
    """An owner or group that does not exist (yet)."""


def uid_of(name):
    if name is None:
        return -1
    if name.isdigit():  # an id without a name on the host (a container's user, e.g. Redis' 999)
        return int(name)
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        raise Unknown("user %s does not exist" % name)


def gid_of(name):
    if name is None:
        return -1
    if name.isdigit():
        return int(name)
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise Unknown("group %s does not exist" % name)


def parse_mode(text, path):
    try:
        mode = int(str(text), 8)
    except ValueError:
        raise ValueError("%s: mode %r is not an octal number" % (path, text))
    if not 0 <= mode <= 0o7777:
        raise ValueError("%s: mode %r is out of range" % (path, text))
    return mode


def attrs_differ(path, uid, gid, mode):
    st = os.stat(path)
    return (uid != -1 and st.st_uid != uid) or (gid != -1 and st.st_gid != gid) or stat.S_IMODE(st.st_mode) != mode


class Files:
    def __init__(self, module):
        self.module = module
        self.check = module.check_mode
        self.changed = []
        self.diffs = []

    def ids(self, item):
        try:
            return uid_of(item.get("owner")), gid_of(item.get("group"))
        except Unknown as exc:
            if self.check:
                return None
            self.module.fail_json(msg="%s: %s" % (item["path"], exc))

    def directory(self, item):
        path = item["path"]
        mode = parse_mode(item["mode"], path)
        ids = self.ids(item)
        exists = os.path.isdir(path)
        if exists and ids is not None and not attrs_differ(path, ids[0], ids[1], mode):
            return
        self.changed.append(path)
        if self.module._diff:
            self.diffs.append(dict(before_header=path, after_header=path,
                                   before=dict(path=path, state="directory" if exists else "absent"),
                                   after=dict(path=path, state="directory")))
        if self.check:
            return
        if not exists:
            os.makedirs(path, mode, exist_ok=True)  # stacks of one host write the shared proxy directory side by side
        os.chown(path, *ids)
        os.chmod(path, mode)

    def file(self, item):
        path = item["path"]
        given = [k for k in ("content", "secret_content", "src") if item.get(k) is not None]
        if len(given) != 1:
            self.module.fail_json(msg="%s: give exactly one of content, secret_content, src (got %s)"
                                  % (path, ", ".join(given) or "none"))
        secret = given[0] == "secret_content"
        if given[0] == "src":
            text = read_text(item["src"])
            if text is None and self.check:
                # Check mode on a new host: the source appears during the real run (e.g. Caddy's CA).
                self.changed.append(path)
                return
            if text is None:
                self.module.fail_json(msg="%s: source file %s does not exist" % (path, item["src"]))
        else:
            text = item[given[0]]
        mode = parse_mode(item["mode"], path)
        ids = self.ids(item)
        before = read_text(path)
        content_changed = before != text
        if not content_changed and ids is not None and not attrs_differ(path, ids[0], ids[1], mode):
            return
        self.changed.append(path)
        if self.module._diff:
            if secret:
                self.diffs.append(dict(before_header=path, after_header=path,
                                       before="(secret, not shown)\n" if before is not None else "",
                                       after="(secret, not shown%s)\n" % (", changed" if content_changed else "")))
            else:
                self.diffs.append(dict(before_header=path, after_header=path, before=before or "", after=text))
        if self.check:
            return
        if not os.path.isdir(os.path.dirname(path)):
            self.module.fail_json(msg="%s: directory %s does not exist" % (path, os.path.dirname(path)))
        if content_changed and item.get("validate"):
            self.validate(path, text, item["validate"])
        if content_changed:
            # Written as root (0600 while in flight), then handed to its owner and group.
            write_private(path, text, mode)
        os.chown(path, *ids)
        os.chmod(path, mode)

    def validate(self, path, text, command):
        if "%s" not in command:
            self.module.fail_json(msg="%s: validate must contain %%s" % path)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".%s." % os.path.basename(path), suffix=".check")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            rc, out, err = self.module.run_command(command % shlex.quote(tmp), use_unsafe_shell=False)
        finally:
            os.unlink(tmp)
        if rc != 0:
            self.module.fail_json(msg="%s: validation failed (%s): %s" % (path, command, (err or out).strip()),
                                  changed_paths=self.changed)

    def run(self):
        try:
            for item in self.module.params["directories"]:
                self.directory(item)
            for item in self.module.params["files"]:
                self.file(item)
        except (ValueError, OSError) as exc:
            self.module.fail_json(msg=str(exc), changed_paths=self.changed)
        state = {}
        for item in self.module.params["directories"] + self.module.params["files"]:
            state[item["path"]] = file_state(item["path"])
            if item.get("secret_content") is not None:
                # Not even a digest of a secret leaves the host (a short password could be guessed from it).
                state[item["path"]].pop("sha256", None)
        result = dict(changed=bool(self.changed), changed_paths=self.changed, state=state)
        if self.module._diff and self.diffs:
            result["diff"] = self.diffs
        return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            directories=dict(type="list", elements="dict", default=[], options=dict(
                path=dict(type="path", required=True),
                owner=dict(type="str"),
                group=dict(type="str"),
                mode=dict(type="str", default="0755"),
            )),
            files=dict(type="list", elements="dict", default=[], options=dict(
                path=dict(type="path", required=True),
                content=dict(type="str"),
                secret_content=dict(type="str", no_log=True),
                src=dict(type="path"),
                owner=dict(type="str"),
                group=dict(type="str"),
                mode=dict(type="str", default="0644"),
                validate=dict(type="str"),
            )),
        ),
        supports_check_mode=True,
    )
    module.exit_json(**Files(module).run())


if __name__ == "__main__":
    main()
