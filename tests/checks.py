"""Checks shared by the unit and workflow tests: a report opened in real headless Chromium, and a crate
validated by roc-validator offline."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NO_CHROMIUM = "Chromium is not installed (Debian: apt-get install chromium)"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--hide-scrollbars"]
# Appended to a copy of a report: once the page has loaded, its title says how many images it has,
# how many failed to decode, and which resources (not `data:` URLs) it requested.
PROBE = """<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  const broken = images.filter((image) => !(image.complete && image.naturalWidth > 0)).length;
  const fetched = performance.getEntriesByType("resource").map((e) => e.name).filter((n) => !n.startsWith("data:"));
  document.title = "probe " + JSON.stringify({images: images.length, broken: broken, fetched: fetched});
});
</script>"""

HAS_VALIDATOR = importlib.util.find_spec("rocrate_validator") is not None
CONTEXT_URL = "https://w3id.org/ro/crate/1.1/context"
# The RO-Crate 1.1 JSON-LD context the crate names, as the rocrate package shipped it up to 0.15.1
CONTEXT = Path(__file__).parent / "unit" / "data" / "ro-crate-1.1-context.jsonld"
CONTEXT_SHA256 = "bb5dd0a79ebd5a3b074e2faf96f437503234f8a4b8e84c7149de91eae0d2222a"


def open_in_chromium(html: Path, folder: Path) -> tuple[dict, list[str]]:
    """Load a copy of `html` with the probe in Chromium: what the probe found, and the console lines."""
    probed = folder / f"probed-{html.name}"
    probed.write_text(html.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    run = subprocess.run([CHROMIUM, *FLAGS, "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000",
                          "--dump-dom", probed.as_uri()], capture_output=True, text=True, timeout=120)
    title = re.search(r"<title>probe (.*?)</title>", run.stdout)
    assert title, f"the probe did not run in {html.name}:\n{run.stderr[-2000:]}"
    console = [line for line in run.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    return json.loads(title.group(1).replace("&quot;", '"')), console


def screenshot(html: Path, shot: Path) -> None:
    subprocess.run([CHROMIUM, *FLAGS, "--window-size=1200,4000", f"--screenshot={shot}", html.as_uri()],
                   capture_output=True, timeout=120, check=True)


def _validator_cache(folder: Path) -> Path:
    """An HTTP cache of rocrate-validator (requests-cache, SQLite) that holds the RO-Crate 1.1 JSON-LD
    context, as `rocrate-validator cache warm` stores it when online: with it, `validate --offline` resolves
    the crate's @context without the network."""
    from requests import Request
    from requests.adapters import HTTPAdapter
    from requests_cache import CachedSession
    from urllib3 import HTTPResponse

    body = CONTEXT.read_bytes()
    assert hashlib.sha256(body).hexdigest() == CONTEXT_SHA256
    raw = HTTPResponse(body=io.BytesIO(body), headers={"Content-Type": "application/ld+json"}, status=200,
                       preload_content=False, request_url=CONTEXT_URL)
    response = HTTPAdapter().build_response(Request("GET", CONTEXT_URL).prepare(), raw)
    assert response.json()["@id"] == CONTEXT_URL  # reads the body, which the cache stores
    cache = folder / "http_cache"
    with CachedSession(str(cache), backend="sqlite") as session:
        session.cache.save_response(response)
    return cache


def validate_crate(crate_folder: Path, work: Path, profile: str) -> None:
    """roc-validator's verdict on the crate in `crate_folder` for `profile`: passes, with every check run."""
    report = work / "report.json"
    result = subprocess.run(
        [str(Path(sys.executable).with_name("rocrate-validator")), "--no-interactive", "validate",
         "--profile-identifier", profile, "--offline", "--cache-path", str(_validator_cache(work)),
         "--output-format", "json", "--output-file", str(report), str(crate_folder)],
        capture_output=True, text=True, timeout=300, check=False)
    verdict = json.loads(report.read_text(encoding="utf-8"))
    issues = [f"{issue['check']['identifier']}: {issue['message']}" for issue in verdict["issues"]]
    assert verdict["passed"] and result.returncode == 0, "\n".join(issues) or result.stdout + result.stderr
    assert verdict["skipped_checks"] == 0  # every check ran: none was skipped for want of the context
