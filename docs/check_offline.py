"""Fail if any built HTML page loads a script, stylesheet, font or image from the network.

Run after the HTML build (the Makefile's ``html`` target does): the docs must
render, formulas included, from a local copy with no network.
"""

import re
import sys
from pathlib import Path

#: src/href of tags that the browser fetches on page load.
_LOADED = re.compile(
    r"<(script|link|img|iframe|source)\b[^>]*?\b(src|href)\s*=\s*[\"']([^\"']+)[\"']",
    re.IGNORECASE,
)
_REMOTE = re.compile(r"^(https?:)?//", re.IGNORECASE)
#: link rel values that are navigation, not loads.
_NOT_LOADED = re.compile(r"rel\s*=\s*[\"'](canonical|next|prev|search|index|author|license)",
                         re.IGNORECASE)


def remote_loads(html_dir):
    """``(page, tag, url)`` for every remote resource a built page would load."""
    found = []
    for page in sorted(Path(html_dir).rglob("*.html")):
        text = page.read_text(encoding="utf-8", errors="replace")
        for match in _LOADED.finditer(text):
            tag, _, url = match.groups()
            if tag.lower() == "link" and _NOT_LOADED.search(match.group(0)):
                continue
            if _REMOTE.match(url):
                found.append((str(page), tag, url))
    return found


def main(argv=None):
    html_dir = (argv or sys.argv[1:] or ["_build/html"])[0]
    pages = list(Path(html_dir).rglob("*.html"))
    if not pages:
        print(f"check_offline: no HTML pages under {html_dir}", file=sys.stderr)
        return 1
    found = remote_loads(html_dir)
    math_pages = [p for p in pages if 'class="math' in p.read_text(encoding="utf-8")]
    local = [p for p in math_pages if "_static/mathjax/" in p.read_text(encoding="utf-8")]
    if len(local) < len(math_pages):
        print(f"check_offline: {len(math_pages) - len(local)} page(s) with formulas do not "
              "load the bundled MathJax (_static/mathjax/)", file=sys.stderr)
        return 1
    for page, tag, url in found[:50]:
        print(f"{page}: <{tag}> loads {url}", file=sys.stderr)
    if found:
        print(f"check_offline: {len(found)} remote load(s) in {len(pages)} pages",
              file=sys.stderr)
        return 1
    print(f"check_offline: {len(pages)} pages load nothing from the network "
          f"({len(math_pages)} with formulas, rendered by the bundled MathJax)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
