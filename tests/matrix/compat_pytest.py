"""pytest plugin for the unit tests on every matrix leg (loaded by matrix.py with -p compat_pytest).

ansible-core 2.21+: a module puts ``invocation`` (its arguments, no_log-masked) into its result only when the
controller asks (INJECT_INVOCATION -> ``_ansible_inject_invocation``; older cores always do and reject that
argument). tests/unit checks that masking, so modules run in-process here as with INJECT_INVOCATION=true.

Older than ansible-core 2.19:

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


def _inject_invocation():
    from ansible.module_utils import basic
    from ansible.module_utils.common.parameters import PASS_VARS

    if "inject_invocation" not in PASS_VARS or getattr(basic, "_owlat_inject", False):
        return
    original = basic._load_params

    def _load_params():
        params = original()
        params["_ansible_inject_invocation"] = True
        if isinstance(basic._PARSED_MODULE_ARGS, dict):
            basic._PARSED_MODULE_ARGS["_ansible_inject_invocation"] = True
        return params

    basic._load_params = _load_params
    basic._owlat_inject = True


# At import (-p loads it before the initial conftest files, which import these names).
if _old_core():
    _install()
_inject_invocation()
