#!/usr/bin/env python3
"""Local AWS emulator launcher for the test harness (moto in server mode).

Run with the project virtualenv's interpreter (created by ``scripts/bootstrap-python``)::

    .venv/bin/python scripts/localcloud/moto_server.py --port 0 [--lambda-endpoint URL]

What it does, in order:

1. imports moto (pinned in scripts/requirements.txt) and enables Step Functions state-machine
   execution (``{"stepfunctions": {"execute_state_machine": true}}`` in
   ``moto.core.config.default_user_config``), then verifies that moto's Step Functions request
   handler now selects the executing (ASL parser) backend;
2. makes the engine's Step Functions service integration (``arn:aws:states:::states:
   startExecution`` and friends) map the task's parameters to the API's member names through
   the operation's input shape, and its response back, as AWS does (``StateMachineArn`` ->
   ``stateMachineArn``; ``executionArn`` -> ``ExecutionArn``). moto 5.2.5's
   ``StateTaskService._normalise_parameters`` is a no-op, so such a task fails with a KeyError
   (``States.Runtime``). Patched on ``StateTaskServiceSfn`` only; if the pinned moto's classes
   are not as expected the launcher exits with status 3;
3. serializes requests: one request is handled at a time (a lock around moto's WSGI app).
   moto's backends do not lock their in-memory state, so concurrent requests lose writes that
   were acknowledged (two conditional DynamoDB puts racing can both succeed); AWS executes each
   such request atomically, and the suite's correctness under races relies on that. Requests
   still arrive concurrently and queue; state machines keep running in moto's own threads;
4. binds moto's WSGI app on ``--host`` (default 127.0.0.1) and ``--port`` (0 = a free port
   chosen by the kernel) and exports ``MOTO_PORT=<bound port>``: moto's Step Functions engine
   builds its service clients (``dynamodb:putItem``, ``aws-sdk:ec2:...`` tasks) for
   ``http://localhost:$MOTO_PORT``, so without this they would call port 5000;
5. with ``--lambda-endpoint URL``, routes the engine's Lambda invocations to URL (for example a
   ``cargo lambda watch`` address) by replacing the engine's client factory
   ``moto.stepfunctions.parser.asl.utils.boto_client.boto_client_for`` with one that returns a
   Lambda client for URL (every other service still goes to this moto server), which reads a
   function error as AWS Lambda answers it (HTTP 200 and ``X-Amz-Function-Error``; cargo lambda
   answers 500, which the engine would take for a failed call, not a catchable error). The hook is
   internal to moto, which is why moto is pinned: if it is missing or changed, this launcher
   exits with status 3 and says so. On success it logs ``lambda routing -> URL`` to stderr;
6. makes ``sts:AssumeRole`` refuse as AWS does where the suite's cross-account behaviour
   depends on it: moto 5.2.5 issues credentials for any role ARN, existing or not. AWS answers
   ``AccessDenied`` when the role does not exist in its account, and when the role's trust
   policy requires an external id (``sts:ExternalId`` under ``StringEquals``) that the request
   does not carry. Other trust conditions are not evaluated (moto does not evaluate them);
   patched on ``moto.sts.models.STSBackend.assume_role``, exit 3 if it is not as expected;
7. prints exactly one line ``READY http://<host>:<port>`` to stdout and flushes. From then on
   stdout is redirected to stderr, so the parent may close its end of the pipe;
8. serves until SIGTERM/SIGINT or until stdin reaches EOF (the parent keeps a pipe to our stdin
   open, so the server dies with the parent). Pass ``--no-stdin-watch`` when running it by hand
   in the background with stdin at /dev/null.

Diagnostics go to stderr. Exit status: 0 on a requested stop, 1 if the server cannot start,
2 on bad usage or a missing/unusable moto install, 3 if the pinned moto's internals changed.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Any, NoReturn
from urllib.parse import urlsplit

PROG = "moto_server.py"
BOOTSTRAP_HINT = "run scripts/bootstrap-python (from the repository root) to create .venv"

# The internal moto hook replaced for --lambda-endpoint, and the module known to call it for
# `lambda:invoke` / `arn:aws:lambda:...` tasks.
HOOK_MODULE = "moto.stepfunctions.parser.asl.utils.boto_client"
HOOK_NAME = "boto_client_for"
LAMBDA_CALLER_MODULE = (
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.lambda_eval_utils"
)


def log(msg: str) -> None:
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


def die(msg: str, code: int) -> NoReturn:
    log(f"error: {msg}")
    sys.exit(code)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n", 1)[0])
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port to bind; 0 = any free port")
    p.add_argument(
        "--lambda-endpoint",
        metavar="URL",
        help="route Step Functions Lambda invocations to this Lambda Invoke API endpoint",
    )
    p.add_argument(
        "--no-stdin-watch",
        action="store_true",
        help="do not exit when stdin reaches EOF (manual runs with stdin at /dev/null)",
    )
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = p.parse_args(argv)
    if not 0 <= args.port <= 65535:
        p.error(f"--port {args.port} is out of range 0..65535")
    if args.lambda_endpoint is not None:
        parts = urlsplit(args.lambda_endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            p.error(f"--lambda-endpoint must be an http(s) URL, got {args.lambda_endpoint!r}")
        args.lambda_endpoint = args.lambda_endpoint.rstrip("/")
    return args


def import_moto() -> Any:
    try:
        import moto  # noqa: PLC0415
        import moto.server  # noqa: F401, PLC0415
    except ImportError as exc:
        die(f"cannot import moto[server] with {sys.executable}: {exc}; {BOOTSTRAP_HINT}", 2)
    return moto


def enable_state_machine_execution() -> None:
    from moto.core import DEFAULT_ACCOUNT_ID  # noqa: PLC0415
    from moto.core.config import default_user_config  # noqa: PLC0415

    # Mutate the shared dict in place: moto modules hold references to this very object.
    default_user_config["stepfunctions"] = {"execute_state_machine": True}

    # Verify at the consumer: the Step Functions response handler picks its backend from this
    # config on every request; it must now be the executing (ASL parser) backend.
    try:
        from moto.stepfunctions.parser.models import StepFunctionsParserBackend  # noqa: PLC0415
        from moto.stepfunctions.responses import get_backend  # noqa: PLC0415
    except ImportError as exc:
        die(f"moto's Step Functions execution backend is not importable: {exc}", 3)
    backend = get_backend(DEFAULT_ACCOUNT_ID, "us-east-1")
    if not isinstance(backend, StepFunctionsParserBackend):
        die(
            "setting stepfunctions.execute_state_machine=true did not take effect: "
            f"moto.stepfunctions.responses.get_backend returned {type(backend).__name__}",
            3,
        )


def function_error_as_lambda_does(http_response: Any, parsed: dict, **_: Any) -> None:
    """botocore ``after-call.lambda.Invoke`` hook: make a function error read as AWS answers it.

    AWS Lambda answers an invocation whose function failed with HTTP 200, the header
    ``X-Amz-Function-Error: Unhandled`` and the error document (``errorType``, ``errorMessage``)
    as the payload; Step Functions matches ``errorType`` against the task's Retry and Catch.
    ``cargo lambda watch`` answers the same failure with HTTP 500 and the document as the body,
    which botocore raises as a ClientError (and moto's engine then fails the whole execution on
    the missing request id) instead of the function error a state machine catches. The answer is
    rewritten in place, before botocore checks the status: only a 500 whose body is such an error
    document; anything else is left as it came.
    """
    import io  # noqa: PLC0415
    import json  # noqa: PLC0415

    from botocore.response import StreamingBody  # noqa: PLC0415

    if getattr(http_response, "status_code", None) != 500:
        return
    body = http_response.content or b""
    try:
        document = json.loads(body)
    except ValueError:
        return
    if not (isinstance(document, dict) and "errorType" in document and "errorMessage" in document):
        return
    http_response.status_code = 200
    parsed.clear()
    parsed.update(
        {
            "StatusCode": 200,
            "FunctionError": "Unhandled",
            "ExecutedVersion": "$LATEST",
            "Payload": StreamingBody(io.BytesIO(body), len(body)),
            "ResponseMetadata": {"HTTPStatusCode": 200, "RequestId": "cargo-lambda"},
        }
    )


def install_lambda_routing(url: str) -> int:
    """Replace the Step Functions engine's client factory for `lambda`. Returns the number of
    module bindings rebound. Exits with status 3 if the pinned moto's hook is not as expected."""
    import importlib  # noqa: PLC0415
    import inspect  # noqa: PLC0415

    import moto  # noqa: PLC0415

    def changed(what: str) -> NoReturn:
        die(
            f"moto {moto.__version__}: cannot route Step Functions Lambda tasks: {what}. "
            "This launcher patches a moto-internal hook and moto is pinned in "
            "scripts/requirements.txt; update scripts/localcloud/moto_server.py for the "
            "installed moto version.",
            3,
        )

    try:
        hook_mod = importlib.import_module(HOOK_MODULE)
        caller_mod = importlib.import_module(LAMBDA_CALLER_MODULE)
    except ImportError as exc:
        changed(f"module not found ({exc})")
    original = getattr(hook_mod, HOOK_NAME, None)
    if not callable(original):
        changed(f"{HOOK_MODULE}.{HOOK_NAME} not found")
    params = list(inspect.signature(original).parameters)
    if params[:3] != ["region", "service", "state_credentials"]:
        changed(f"{HOOK_MODULE}.{HOOK_NAME} has an unexpected signature {params}")
    if getattr(caller_mod, HOOK_NAME, None) is not original:
        changed(f"{LAMBDA_CALLER_MODULE} no longer calls {HOOK_NAME}")

    import boto3  # noqa: PLC0415
    from botocore.config import Config  # noqa: PLC0415

    timeout_s = 99999999
    try:
        from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import (  # noqa: PLC0415
            TimeoutSeconds,
        )

        timeout_s = TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS
    except (ImportError, AttributeError):
        pass

    def routed_boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        if service != "lambda":
            return original(region=region, service=service, state_credentials=state_credentials)
        # Same client settings as moto's factory (no retries: a task's Retry block decides).
        client = boto3.client(
            service_name="lambda",
            region_name=region,
            endpoint_url=url,
            aws_access_key_id="ak",
            aws_secret_access_key="sk",
            config=Config(
                parameter_validation=False,
                retries={"max_attempts": 0, "total_max_attempts": 1},
                connect_timeout=timeout_s,
                read_timeout=timeout_s,
            ),
        )
        client.meta.events.register("after-call.lambda.Invoke", function_error_as_lambda_does)
        return client

    routed_boto_client_for.__wrapped__ = original  # type: ignore[attr-defined]

    # Rebind the definition (for modules imported later) and every `from ... import
    # boto_client_for` binding already made by loaded moto modules.
    rebound = 0
    for mod in list(sys.modules.values()):
        name = getattr(mod, "__name__", "")
        if name.startswith("moto.") and getattr(mod, HOOK_NAME, None) is original:
            setattr(mod, HOOK_NAME, routed_boto_client_for)
            rebound += 1

    # Verify where it matters: the factory the Lambda task code calls now yields a client
    # for `url`, and other services still resolve to moto itself.
    client = getattr(caller_mod, HOOK_NAME)(region="us-east-1", service="lambda")
    got = client.meta.endpoint_url.rstrip("/")
    if got != url:
        changed(f"patched factory returned a Lambda client for {got}, expected {url}")
    return rebound


SFN_SERVICE_MODULE = (
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn"
)


def install_sfn_parameter_mapping() -> None:
    """Map `states:` task parameters/responses through botocore's shapes (see the module doc)."""
    import importlib  # noqa: PLC0415

    import moto  # noqa: PLC0415

    def changed(what: str) -> NoReturn:
        die(
            f"moto {moto.__version__}: cannot map Step Functions task parameters: {what}. "
            "moto is pinned in scripts/requirements.txt; update scripts/localcloud/"
            "moto_server.py for the installed moto version.",
            3,
        )

    try:
        sfn_mod = importlib.import_module(SFN_SERVICE_MODULE)
        from botocore.session import get_session  # noqa: PLC0415
        from moto.stepfunctions.parser.utils import camel_to_snake_case  # noqa: PLC0415
    except ImportError as exc:
        changed(f"module not found ({exc})")
    cls = getattr(sfn_mod, "StateTaskServiceSfn", None)
    needed = (
        "_normalise_parameters",
        "_normalise_response",
        "_to_boto_request",
        "_from_boto_response",
        "_get_boto_service_name",
        "_get_boto_service_action",
    )
    if cls is None or not all(callable(getattr(cls, n, None)) for n in needed):
        changed(f"{SFN_SERVICE_MODULE}.StateTaskServiceSfn lacks one of {needed}")

    session = get_session()
    operations: dict[tuple[str, str], Any] = {}

    def operation(service: str, action: str) -> Any:
        key = (service, action)
        if key not in operations:
            model = session.get_service_model(service)
            by_snake = {camel_to_snake_case(n): n for n in model.operation_names}
            name = by_snake.get(action)
            operations[key] = model.operation_model(name) if name else None
        return operations[key]

    original_parameters = cls._normalise_parameters
    original_response = cls._normalise_response

    def normalise_parameters(
        self: Any,
        parameters: dict,
        boto_service_name: str | None = None,
        service_action_name: str | None = None,
    ) -> None:
        original_parameters(self, parameters, boto_service_name, service_action_name)
        op = operation(
            self._get_boto_service_name(boto_service_name),
            self._get_boto_service_action(service_action_name),
        )
        if op is not None and op.input_shape is not None:
            self._to_boto_request(parameters, op.input_shape)

    def normalise_response(
        self: Any,
        response: Any,
        boto_service_name: str | None = None,
        service_action_name: str | None = None,
    ) -> None:
        original_response(self, response, boto_service_name, service_action_name)
        op = operation(
            self._get_boto_service_name(boto_service_name),
            self._get_boto_service_action(service_action_name),
        )
        if op is not None and op.output_shape is not None:
            self._from_boto_response(response, op.output_shape)

    cls._normalise_parameters = normalise_parameters
    cls._normalise_response = normalise_response

    # Verify on the real operation: StartExecution's parameters map to botocore's names.
    probe = cls.__new__(cls)
    params = {"StateMachineArn": "arn", "Name": "n", "Input": "{}"}
    try:
        op = operation("stepfunctions", "start_execution")
        probe._to_boto_request(params, op.input_shape)
        response = {"executionArn": "arn", "startDate": 0}
        probe._from_boto_response(response, op.output_shape)
    except Exception as exc:  # noqa: BLE001 - any failure here means the internals changed
        changed(f"probe failed ({type(exc).__name__}: {exc})")
    if params != {"stateMachineArn": "arn", "name": "n", "input": "{}"} or set(response) != {
        "ExecutionArn",
        "StartDate",
    }:
        changed(f"probe mapped to {params} / {response}")


def install_assume_role_checks() -> None:
    """Refuse ``sts:AssumeRole`` for a missing role or a missing/wrong external id (module doc)."""
    import json  # noqa: PLC0415
    import re  # noqa: PLC0415

    import moto  # noqa: PLC0415

    try:
        from moto.iam.models import iam_backends  # noqa: PLC0415
        from moto.sts.exceptions import STSClientError  # noqa: PLC0415
        from moto.sts.models import STSBackend  # noqa: PLC0415
    except ImportError as exc:
        die(f"moto {moto.__version__}: cannot check sts:AssumeRole: {exc}", 3)
    original = getattr(STSBackend, "assume_role", None)
    if not callable(original):
        die(f"moto {moto.__version__}: STSBackend.assume_role is missing", 3)

    arn_re = re.compile(r"^arn:(aws[a-z-]*):iam::([0-9]{12}):role(/.*)?/([^/]+)$")

    def required_external_ids(document: str) -> list[str] | None:
        """The external ids the trust requires (None when it requires none)."""
        try:
            doc = json.loads(document)
        except (TypeError, ValueError):
            return None
        statements = doc.get("Statement", [])
        if isinstance(statements, dict):
            statements = [statements]
        wanted: list[str] = []
        for st in statements:
            cond = (st.get("Condition") or {}).get("StringEquals") or {}
            value = cond.get("sts:ExternalId")
            if isinstance(value, str):
                wanted.append(value)
            elif isinstance(value, list):
                wanted.extend(v for v in value if isinstance(v, str))
        return wanted or None

    def assume_role(self: Any, *args: Any, **kwargs: Any) -> Any:
        role_arn = kwargs.get("role_arn")
        external_id = kwargs.get("external_id")
        match = arn_re.match(role_arn or "")
        if match is None:
            raise STSClientError("ValidationError", f"{role_arn} is not a role ARN")
        partition, account = match.group(1), match.group(2)
        role = next(
            (r for r in iam_backends[account][partition].get_roles() if r.arn == role_arn),
            None,
        )
        refusal = STSClientError(
            "AccessDenied",
            f"User is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
        )
        if role is None:
            raise refusal
        wanted = required_external_ids(role.assume_role_policy_document)
        if wanted is not None and external_id not in wanted:
            raise refusal
        return original(self, *args, **kwargs)

    STSBackend.assume_role = assume_role


class SerializedApp:
    """A WSGI app that lets one request at a time into `app` (see the module doc, point 3).

    The response body is produced completely while the lock is held, so a streamed body cannot
    interleave with another request either."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict, start_response: Any) -> Any:
        with self._lock:
            result = self._app(environ, start_response)
            try:
                return list(result)
            finally:
                close = getattr(result, "close", None)
                if callable(close):
                    close()


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    moto = import_moto()

    import logging  # noqa: PLC0415

    try:
        from moto.moto_server.werkzeug_app import (  # noqa: PLC0415
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server  # noqa: PLC0415
    except ImportError as exc:
        die(f"moto server components missing ({exc}); {BOOTSTRAP_HINT}", 2)

    if not args.verbose:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)

    enable_state_machine_execution()
    install_sfn_parameter_mapping()
    install_assume_role_checks()

    try:
        server = make_server(
            args.host,
            args.port,
            SerializedApp(DomainDispatcherApplication(create_backend_app)),
            threaded=True,
            request_handler=MotoRequestHandler,
        )
    except OSError as exc:
        die(f"cannot listen on {args.host}:{args.port}: {exc}", 1)
    except SystemExit:
        # werkzeug reports "Address already in use" itself and exits.
        die(f"cannot listen on {args.host}:{args.port} (address in use; see above)", 1)
    host, port = server.server_address[:2]
    # moto's Step Functions engine calls other services at http://localhost:$MOTO_PORT.
    os.environ["MOTO_PORT"] = str(port)

    if args.lambda_endpoint is not None:
        rebound = install_lambda_routing(args.lambda_endpoint)
        log(
            f"lambda routing -> {args.lambda_endpoint} "
            f"(patched {HOOK_MODULE}.{HOOK_NAME}, {rebound} bindings)"
        )

    stop = threading.Event()
    reason: list[str] = []

    def request_stop(why: str) -> None:
        if not reason:
            reason.append(why)
        stop.set()

    def on_signal(signum: int, _frame: Any) -> None:
        request_stop(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    serve_thread = threading.Thread(target=server.serve_forever, name="moto-serve", daemon=True)
    serve_thread.start()

    if not args.no_stdin_watch:

        def watch_stdin() -> None:
            try:
                while sys.stdin.buffer.read1(65536):
                    pass
            except (OSError, ValueError):
                pass
            request_stop("stdin closed")

        threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()

    log(f"moto {moto.__version__} listening on {host}:{port} (stepfunctions execution on)")
    sys.stdout.write(f"READY http://{host}:{port}\n")
    sys.stdout.flush()
    # Anything printed later (moto prints now and then) goes to stderr, never into the pipe the
    # parent read READY from.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    stop.wait()
    log(f"stopping ({reason[0] if reason else 'stop requested'})")
    sys.stderr.flush()
    # No graceful drain: state is in-memory only, and worker threads (request handlers, running
    # state machines) must not keep the process alive after the parent is gone.
    os._exit(0)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(0)
