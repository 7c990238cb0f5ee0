"""Entry point the worker runs: ``python -m ork.runner`` (cwd = the workflow's base_dir).

Reads the request named by ORK_TASK_REQUEST: {file, function, input, context} (a custom executor's task also has
executor: {name, type: "module:Class", config}, config_file and upstream). Writes the result to ORK_TASK_RESULT:
{"ok": true, "output": ..., "metrics": [...]} or {"ok": false, "error": {type, message, details}, "metrics": [...]}.
Exits 0 whenever a result was written. For debugging: ``python -m ork.runner request.json [result.json]``.

Error types: spec_error (task not found), input_validation, config_validation (an executor's config),
output_validation, task_error (TaskError raised), exception (anything else, with the traceback), exit_code (sys.exit
with a non-zero code).
"""

import dataclasses
import importlib
import importlib.util
import inspect
import json
import os
import re
import sys
import traceback
import typing

from .context import Context, TaskError

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


class Failure(Exception):
    """An error result with a type; raised inside the runner, turned into {"ok": false, "error": ...}."""

    def __init__(self, type_, message, details=None):
        super().__init__(message)
        self.error = {"type": type_, "message": message, "details": details}


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))


# ---- pydantic (v1 and v2), detected without importing pydantic ----

def is_model(tp):
    """True for a pydantic BaseModel subclass (v2, v1, or v2's pydantic.v1)."""
    return isinstance(tp, type) and any(
        c.__name__ == "BaseModel" and c.__module__.startswith("pydantic") for c in tp.__mro__)


def _is_validation_error(e):
    return type(e).__name__ == "ValidationError" and type(e).__module__.startswith("pydantic")


def _errors(e):
    try:
        errs = e.errors(include_url=False)
    except TypeError:
        errs = e.errors()
    return _jsonable(errs)


def validate(model, value, kind):
    """model.model_validate(value) (v2) or model.parse_obj(value) (v1); a failure becomes Failure(kind)."""
    try:
        return model.model_validate(value) if hasattr(model, "model_validate") else model.parse_obj(value)
    except Exception as e:  # noqa: BLE001 - only pydantic's ValidationError is translated
        if not _is_validation_error(e):
            raise
        errs = _errors(e)
        first = "; ".join("%s: %s" % (".".join(str(p) for p in err.get("loc", ())) or "(root)", err.get("msg", ""))
                          for err in errs[:3])
        what = kind.split("_")[0]
        raise Failure(kind, "%s validation failed for %s: %s" % (what, model.__name__, first),
                      {"model": model.__name__, "errors": errs})


def to_json(value):
    """A JSON-able value: models dumped (v2 model_dump(mode="json"), v1 .json()), containers walked."""
    if is_model(type(value)):
        if hasattr(value, "model_dump"):
            return value.model_dump(mode="json")
        return json.loads(value.json())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_json(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value


def _optional_model(ann):
    """The model M of an annotation Optional[M] / M | None, else None."""
    is_union = getattr(ann, "__origin__", None) is typing.Union or type(ann).__name__ == "UnionType"
    if not is_union:
        return None
    args = [a for a in getattr(ann, "__args__", ()) if a is not type(None)]
    return args[0] if len(args) == 1 and is_model(args[0]) else None


def coerce(ann, value, kind):
    """Validates value against a model annotation (or Optional model); other annotations pass it through."""
    if is_model(ann):
        return validate(ann, value, kind)
    model = _optional_model(ann)
    if model is not None and value is not None:
        return validate(model, value, kind)
    return value


# ---- finding the task ----

def _hints(fn):
    try:
        return typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - unresolvable annotations: use them raw
        return dict(getattr(fn, "__annotations__", {}) or {})


def _wants_ctx(param, hints):
    ann = hints.get(param.name)
    return param.name == "ctx" or (isinstance(ann, type) and issubclass(ann, Context))


def _import_file(path):
    name = "ork_task_" + re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
    folder = os.path.dirname(path)
    if folder not in sys.path:
        sys.path.append(folder)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _find_task(module, file):
    marked = [v for v in vars(module).values() if callable(v) and hasattr(v, "__ork_task__")]
    own = [f for f in marked if getattr(f, "__module__", None) == module.__name__]
    marked = own or marked
    if len(marked) == 1:
        return marked[0]
    names = sorted(getattr(f, "__name__", "?") for f in marked)
    main = getattr(module, "main", None)
    if callable(main) and (not marked or main in marked):
        return main
    if marked:
        raise Failure("spec_error", "%s has several @task functions (%s): name one with `function`"
                      % (file, ", ".join(names)))
    raise Failure("spec_error", "%s has no @task function and no main()" % file)


def _attr_path(obj, dotted, where):
    for part in dotted.split("."):
        if not hasattr(obj, part):
            raise Failure("spec_error", "function '%s' not found in %s" % (dotted, where))
        obj = getattr(obj, part)
    return obj


def load_task(request):
    """(callable, mode): mode "task" for a task file, "function" for `function: pkg.module:func`."""
    file, function = request.get("file"), request.get("function")
    if file:
        path = os.path.abspath(file)
        if not os.path.isfile(path):
            raise Failure("spec_error", "task file not found: %s (cwd %s)" % (file, os.getcwd()))
        module = _import_file(path)
        if function:
            return _attr_path(module, function.split(":")[-1], file), "task"
        return _find_task(module, file), "task"
    if function:
        if ":" in function:
            mod, name = function.split(":", 1)
        else:
            mod, _, name = function.rpartition(".")
        if not mod or not name:
            raise Failure("spec_error", "function must look like 'package.module:func', got '%s'" % function)
        return _attr_path(importlib.import_module(mod), name, mod), "function"
    raise Failure("spec_error", "a python task needs `file` or `function`")


# ---- calling it ----

def call_task(fn, inp, ctx):
    """Task-file mode: first parameter gets the input (validated if it is a model), `ctx`/Context the context."""
    hints = _hints(fn)
    args, used_input = [], False
    for p in inspect.signature(fn).parameters.values():
        if p.kind not in _POSITIONAL:
            continue
        if _wants_ctx(p, hints):
            args.append(ctx)
        elif not used_input:
            args.append(coerce(hints.get(p.name), inp, "input_validation"))
            used_input = True
        elif p.default is inspect.Parameter.empty:
            raise Failure("spec_error", "task parameter '%s' is neither the input nor ctx" % p.name)
        else:
            break
    return fn(*args), hints.get("return")


def call_function(fn, inp, ctx):
    """Function mode: func(**input); keys it does not accept are dropped unless it takes **kwargs."""
    hints = _hints(fn)
    if inp is None:
        inp = {}
    if not isinstance(inp, dict):
        return fn(inp), hints.get("return")
    params = inspect.signature(fn).parameters.values()
    kwargs, missing = {}, []
    for p in params:
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        if _wants_ctx(p, hints):
            kwargs[p.name] = ctx
        elif p.name in inp:
            kwargs[p.name] = coerce(hints.get(p.name), inp[p.name], "input_validation")
        elif p.default is inspect.Parameter.empty:
            missing.append(p.name)
    if missing:
        raise Failure("input_validation", "missing input for parameter(s): %s" % ", ".join(missing),
                      {"missing": missing})
    if any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params):
        kwargs.update({k: v for k, v in inp.items() if k not in kwargs})
    return fn(**kwargs), hints.get("return")


# ---- custom executors (@executor classes named in ork.yaml) ----

def load_object(ref, what):
    """`package.module:Name` (or `path/to/file.py:Name`, relative to the cwd) → the object."""
    if ":" not in ref:
        raise Failure("spec_error", "%s must look like 'package.module:Class', got '%s'" % (what, ref))
    mod, name = ref.rsplit(":", 1)
    if mod.endswith(".py"):
        path = os.path.abspath(mod)
        if not os.path.isfile(path):
            raise Failure("spec_error", "%s: file not found: %s (cwd %s)" % (what, mod, os.getcwd()))
        module = _import_file(path)
    else:
        module = importlib.import_module(mod)
    return _attr_path(module, name, mod)


def make_executor(cls, config, ref):
    """cls(config): the first __init__ parameter gets the config, validated when annotated with a model."""
    if not isinstance(cls, type) or not hasattr(cls, "__ork_executor__"):
        raise Failure("spec_error", "%s is not a class marked @executor" % ref)
    params = [p for p in list(inspect.signature(cls.__init__).parameters.values())[1:]
              if p.kind in _POSITIONAL or p.kind == inspect.Parameter.KEYWORD_ONLY]
    if not params:
        if config:
            raise Failure("spec_error", "%s takes no config, but ork.yaml gives it one" % ref)
        return cls()
    ann = _hints(cls.__init__).get(params[0].name)
    return cls(coerce(ann, config if config is not None else {}, "config_validation"))


def call_executor(instance, request, ctx):
    """instance.run(...) with its parameters filled by name: config_file, ctx (or a Context annotation), upstream,
    input; others must have defaults."""
    fn = instance.run
    hints = _hints(fn)
    available = {"config_file": request.get("config_file"), "upstream": request.get("upstream") or {}}
    kwargs = {}
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        if _wants_ctx(p, hints):
            kwargs[p.name] = ctx
        elif p.name == "input":
            kwargs[p.name] = coerce(hints.get(p.name), request.get("input"), "input_validation")
        elif p.name in available:
            kwargs[p.name] = available[p.name]
        elif p.default is inspect.Parameter.empty:
            raise Failure("spec_error", "%s.run parameter '%s' is none of config_file, ctx, upstream, input"
                          % (type(instance).__name__, p.name))
    return fn(**kwargs), hints.get("return")


def run_executor(request, ctx):
    spec = request.get("executor") or {}
    ref = spec.get("type") or ""
    cls = load_object(ref, "executor type")
    instance = make_executor(cls, spec.get("config"), ref)
    return call_executor(instance, request, ctx)


def run(request, ctx):
    """Loads and calls the task; returns its JSON-able output or raises."""
    if request.get("executor"):
        result, ret_ann = run_executor(request, ctx)
    else:
        fn, mode = load_task(request)
        result, ret_ann = (call_task if mode == "task" else call_function)(fn, request.get("input"), ctx)
    if is_model(ret_ann) and isinstance(result, dict):
        result = validate(ret_ann, result, "output_validation")
    out = to_json(result)
    try:
        json.dumps(out, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise Failure("output_validation", "task output is not JSON: %s" % e)
    return out


def execute(request):
    """Runs one request; returns the result dict (never raises for task failures)."""
    ctx = Context.from_dict(request.get("context"))
    try:
        result = {"ok": True, "output": run(request, ctx)}
    except Failure as f:
        result = {"ok": False, "error": f.error}
    except TaskError as e:
        result = {"ok": False, "error": {"type": "task_error", "message": e.message, "details": e.details}}
    except SystemExit as e:
        if e.code in (None, 0):
            result = {"ok": True, "output": None}
        else:
            result = {"ok": False, "error": {"type": "exit_code", "message": "task called sys.exit(%r)" % (e.code,),
                                             "details": {"exit_code": e.code}}}
    except BaseException as e:  # noqa: BLE001 - every failure becomes a result
        traceback.print_exc()
        result = {"ok": False, "error": {"type": "exception", "message": "%s: %s" % (type(e).__name__, e),
                                         "details": {"traceback": traceback.format_exc()}}}
    result["metrics"] = ctx.metrics.records
    try:
        json.dumps(result, allow_nan=False)
    except (TypeError, ValueError):
        if not result["ok"]:
            result["error"]["details"] = _jsonable(result["error"].get("details"))
        result["metrics"] = _jsonable(result["metrics"])
    return result


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    req_path = os.environ.get("ORK_TASK_REQUEST") or (argv[0] if argv else None)
    res_path = os.environ.get("ORK_TASK_RESULT") or (argv[1] if len(argv) > 1 else None)
    if not req_path:
        sys.stderr.write("usage: python -m ork.runner REQUEST.json [RESULT.json] (or ORK_TASK_REQUEST/RESULT)\n")
        return 2
    with open(req_path, encoding="utf-8") as f:
        request = json.load(f)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    result = execute(request)
    text = json.dumps(result)
    sys.stdout.flush()
    sys.stderr.flush()
    if not res_path:
        print(text)
        return 0
    tmp = res_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, res_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
