"""Is a report folder self-contained? ``check_report`` lists what would keep ``index.html`` from being read offline
in a copy of the folder: links that do not resolve inside it, audio that is missing or does not decode, absolute
machine paths in its pages and records. ``make reference`` runs it (``vaelib-report-index FOLDER --check``)."""
from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

# an absolute path of a POSIX or Windows machine inside a page or record ("/tmp/x", "/home/u/...", "C:\\Users")
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/\\-])/(?:tmp|home|work|root|Users|usr|var|opt|mnt|private|srv|scratch|"
                           r"media|nfs|data|run|etc)/|\b[A-Za-z]:\\\\?[A-Za-z]")
# an embedded file's base64 payload (a figure inlined as "data:image/png;base64,..."): its alphabet holds "/" and
# letters, so it can spell "/tmp/" by chance; it is skipped before the path scan
BASE64_PAYLOAD = re.compile(r"(?<=;base64,)[A-Za-z0-9+/=\s]+")
AUDIO_SUFFIXES = (".ogg", ".oga", ".flac", ".wav")


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[tuple[str, str]] = []  # (tag, url)

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("href", "src") and v:
                self.refs.append((tag, v))


def local_refs(page: Path) -> list[tuple[str, str]]:
    """(tag, url) of every href/src of an HTML page that points at a file (not a web URL, data URI or anchor)."""
    parser = _Refs()
    parser.feed(page.read_text(encoding="utf-8", errors="replace"))
    return [(t, u) for t, u in parser.refs
            if not (urlsplit(u).scheme or u.startswith(("#", "//")))]


def check_report(folder) -> list[str]:
    """Problems that keep ``folder/index.html`` from being read offline in a copy of the folder (empty: none):

    * an href/src of the index, or of a page it links to, that is absolute or does not resolve to a file inside
      the folder;
    * an ``<audio>`` of the index whose file is missing or does not decode (soundfile), or an index with no audio;
    * an absolute machine path in any ``*.html`` or ``*.json`` under the folder (``ABSOLUTE_PATH``), outside
      embedded base64 payloads (``BASE64_PAYLOAD``)."""
    import soundfile as sf

    folder = Path(folder).resolve()
    index = folder / "index.html"
    if not index.is_file():
        return [f"no index.html in {folder.name}"]
    problems, pages, n_audio = [], [index], 0
    for page in [index]:
        for tag, url in local_refs(page):
            target = (page.parent / unquote(urlsplit(url).path)).resolve()
            if url.startswith("/") or folder not in target.parents or not target.is_file():
                problems.append(f"{page.relative_to(folder)}: <{tag}> {url} does not resolve inside the folder")
                continue
            if target.suffix == ".html" and target not in pages:
                pages.append(target)
            if tag == "audio" or target.suffix in AUDIO_SUFFIXES:
                n_audio += 1
                try:
                    data, _ = sf.read(str(target), frames=22050)
                    if not len(data):
                        problems.append(f"{url}: no audio frames")
                except Exception as e:  # noqa: BLE001 - any decoder error is the finding
                    problems.append(f"{url}: does not decode ({e})")
    for page in pages[1:]:
        for tag, url in local_refs(page):
            target = (page.parent / unquote(urlsplit(url).path)).resolve()
            if url.startswith("/") or folder not in target.parents or not target.is_file():
                problems.append(f"{page.relative_to(folder)}: <{tag}> {url} does not resolve inside the folder")
    if n_audio == 0:
        problems.append("index.html has no <audio>")
    for f in sorted([*folder.rglob("*.html"), *folder.rglob("*.json")]):
        text = BASE64_PAYLOAD.sub("", f.read_text(encoding="utf-8", errors="replace"))
        for m in ABSOLUTE_PATH.finditer(text):
            problems.append(f"{f.relative_to(folder)}: absolute path …{text[max(m.start() - 30, 0):m.end() + 40]!r}")
            break
    return problems
