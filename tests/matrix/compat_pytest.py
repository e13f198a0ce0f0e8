"""pytest plugin for the matrix legs older than ansible-core 2.19 (loaded by matrix.py with -p compat_pytest).

tests/unit/plugins/conftest.py runs modules in-process through two ansible-core 2.19+ internals:
``ansible.module_utils._internal.is_controller`` and ``AnsibleModule._record_module_result`` (the hook that
receives the final, no_log-masked result). ansible-core 2.17/2.18 have neither: there the result is the JSON
line ``_return_formatted`` prints. This plugin adds both names so the same tests run unchanged on the old
legs; the module code and ansible-core's own result handling (warnings, deprecations, no_log masking) stay
what the old ansible-core does.
"""

import contextlib
import io
import json
import sys
import types


def _install():
    from ansible.module_utils import basic

    try:
        from ansible.module_utils import _internal
    except ImportError:  # ansible-core 2.17
        import ansible.module_utils as mu

        _internal = types.ModuleType("ansible.module_utils._internal")
        sys.modules["ansible.module_utils._internal"] = _internal
        mu._internal = _internal
    if not hasattr(_internal, "is_controller"):
        _internal.is_controller = False

    cls = basic.AnsibleModule
    if hasattr(cls, "_record_module_result"):
        return
    original = cls._return_formatted

    def _record_module_result(self, result):
        print("\n%s" % self.jsonify(result))

    def _return_formatted(self, kwargs):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            original(self, kwargs)
        self._record_module_result(json.loads(out.getvalue()))

    cls._record_module_result = _record_module_result
    cls._return_formatted = _return_formatted


def _old_core():
    from ansible.release import __version__

    return tuple(int(p) for p in __version__.split(".")[:2]) < (2, 19)


# At import (-p loads it before the initial conftest files, which import these names).
if _old_core():
    _install()
