# Copyright: owlat.selfhost contributors
# Apache License 2.0 (see LICENSE)
"""A stack's secrets file: generated once in exact formats, kept, never rotated silently.

Shared by owlat_secrets and owlat_stack_state. Messages name secrets and files, never values.

Private to this collection: no compatibility promise outside it.
"""

from __future__ import annotations

import hashlib
import os

from ansible_collections.owlat.selfhost.plugins.module_utils._files import (
    ENV_NAME_RE,
    EnvFile,
    EnvFileError,
    fix_mode,
    read_text,
    write_private,
)
from ansible_collections.owlat.selfhost.plugins.module_utils import _secret_formats as formats


class StackSecrets:
    """``params``: path, secrets (name -> format), values (name -> supplied value), allow_change.
    ``module`` gives fail_json, check_mode and _diff (owlat_secrets, owlat_stack_state)."""

    def __init__(self, module, params=None):
        params = module.params if params is None else params
        self.module = module
        self.path = params["path"]
        self.wanted = params["secrets"]
        self.values = params.get("values") or {}
        self.allow_change = params.get("allow_change", False)

    def supplied_values(self):
        supplied = {}
        errors = []
        for name, value in sorted(self.values.items()):
            if value is None or value == "":
                continue
            if name not in self.wanted:
                errors.append("values: %s is not listed in secrets, so its format is unknown" % name)
            elif not isinstance(value, str):
                errors.append("values: %s must be a string" % name)
            else:
                supplied[name] = value
        return supplied, errors

    def check_spec(self):
        errors = []
        for name, fmt in sorted(self.wanted.items()):
            if not ENV_NAME_RE.match(name):
                errors.append("secrets: %r is not a valid variable name" % name)
            elif not formats.is_known(fmt):
                errors.append(
                    "secrets: unknown format %r for %s (known: %s)" % (fmt, name, ", ".join(formats.KNOWN_FORMATS))
                )
        return errors

    def run(self):
        errors = self.check_spec()
        if errors:
            self.module.fail_json(msg="; ".join(errors))
        supplied, errors = self.supplied_values()
        for name, value in sorted(supplied.items()):
            if not formats.is_valid(self.wanted[name], value):
                errors.append("values: %s does not match the format %s" % (name, formats.describe(self.wanted[name])))
        if errors:
            self.module.fail_json(msg="; ".join(errors))

        before_text = read_text(self.path)
        try:
            env = EnvFile(before_text)
        except EnvFileError as exc:
            self.module.fail_json(msg="%s: %s; fix the file, it will not be overwritten" % (self.path, exc))
        before_names = env.names()

        generated, provided, replaced = [], [], []
        for name, fmt in sorted(self.wanted.items()):
            stored = env.get(name)
            value = supplied.get(name)
            if stored is None:
                if value is None:
                    env.set(name, formats.generate(fmt))
                    generated.append(name)
                else:
                    env.set(name, value)
                    provided.append(name)
                continue
            if value is not None and value != stored:
                if not self.allow_change:
                    errors.append(
                        "%s differs from the value stored in %s; set allow_change (owlat_stack_secrets_allow_change)"
                        " to replace it — data sealed with the old value becomes unreadable" % (name, self.path)
                    )
                    continue
                env.set(name, value)
                replaced.append(name)
            elif not formats.is_valid(fmt, stored):
                errors.append(
                    "%s stored in %s does not match the format %s; fix the file, or supply a value in values"
                    " together with allow_change (owlat_stack_secrets_allow_change)" % (name, self.path, formats.describe(fmt))
                )
        if errors:
            self.module.fail_json(msg="; ".join(errors))

        content_changed = bool(generated or provided or replaced)
        mode_changed = False
        if not content_changed and before_text is not None:
            mode_changed = fix_mode(self.path, 0o600, self.module.check_mode)
        # The directory holds more secrets (admin key, configs): owner only, even if someone widened it.
        directory = os.path.dirname(os.path.abspath(self.path))
        if os.path.isdir(directory):
            mode_changed = fix_mode(directory, 0o700, self.module.check_mode) or mode_changed
        if content_changed and not self.module.check_mode:
            write_private(self.path, env.render(), 0o600)

        result = dict(
            changed=content_changed or mode_changed,
            secrets=dict(env.values),
            checksum=hashlib.sha256(env.render().encode("utf-8")).hexdigest(),
            generated=generated,
            supplied=provided,
            replaced=replaced,
        )
        if self.module._diff:
            marks = dict((n, "generated") for n in generated)
            marks.update((n, "supplied") for n in provided)
            marks.update((n, "replaced") for n in replaced)
            result["diff"] = dict(
                before="".join("%s\n" % n for n in sorted(before_names)) if before_text is not None else "",
                after="".join(
                    "%s%s\n" % (n, " (%s)" % marks[n] if n in marks else "") for n in sorted(env.names())
                ),
                before_header="%s (names only)" % self.path,
                after_header="%s (names only)" % self.path,
            )
        return result
