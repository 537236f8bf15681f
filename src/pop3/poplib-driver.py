# Drives Quillmail's POP3 server with Python's poplib for the tests (src/pop3/*.test.ts).
# Usage: python3 poplib-driver.py PORT STEPS_JSON
# STEPS is a list of [method, ...args] called on one poplib.POP3 in order, e.g.
# [["user", "a@example.com"], ["pass_", "pw"], ["retr", 1], ["quit"]]. Prints one JSON
# document: per step {"ok": result} or {"error": text}; bytes are base64 under {"b64": ...}.
# Steps after an error still run, so a test sees how the session went on.
import base64
import json
import poplib
import ssl
import sys


def plain(value):
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def main():
    port = int(sys.argv[1])
    steps = json.loads(sys.argv[2])
    pop = poplib.POP3("127.0.0.1", port, timeout=30)
    results = [{"ok": plain(pop.getwelcome())}]
    for method, *args in steps:
        try:
            if method == "stls":
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                result = pop.stls(context)
            elif method == "close":
                result = pop.close()
            else:
                result = getattr(pop, method)(*args)
            results.append({"ok": plain(result)})
        except (poplib.error_proto, OSError, EOFError) as error:
            detail = error.args[0] if error.args else error
            if isinstance(detail, bytes):
                detail = detail.decode("utf-8", "replace")
            results.append({"error": str(detail)})
    print(json.dumps(results))


main()
