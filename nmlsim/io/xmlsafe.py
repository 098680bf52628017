"""A hardened XML parser: no DTDs, no entities, no network, line numbers kept."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from lxml import etree

from ..errors import FormatError, SecurityError

MAX_XML_BYTES = 512 * 1024 * 1024


def _parser():
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                           huge_tree=False, remove_comments=True, remove_pis=True)


def parse_xml(path) -> etree._Element:
    """Parse ``path`` and return its root element.

    Any document type declaration is refused outright: NeuroML and LEMS never need one,
    and refusing it rules out entity expansion ("billion laughs") and external entities.
    """
    path = Path(path)
    try:
        st = path.stat()
        if stat.S_ISDIR(st.st_mode):
            raise FormatError("is a folder, not a file", file=path)
        if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end
            raise FormatError("not a regular file (a pipe or device?)", file=path)
        size = st.st_size
        if size > MAX_XML_BYTES:
            raise FormatError(f"file is {size} bytes, larger than the {MAX_XML_BYTES} byte limit", file=path)
        data = path.read_bytes()
    except FileNotFoundError:
        raise FormatError("file not found", file=path) from None
    except IsADirectoryError:
        raise FormatError("is a folder, not a file", file=path) from None
    except PermissionError:
        raise FormatError("permission denied", file=path) from None
    head = data[:4096].lstrip()
    if b"<!DOCTYPE" in data[:65536].upper() or b"<!ENTITY" in data[:65536].upper():
        line = data[: data.upper().find(b"<!")].count(b"\n") + 1
        raise SecurityError("document type declarations and entities are not allowed in model files",
                            file=path, line=line)
    if not head.startswith(b"<"):
        raise FormatError("not an XML file", file=path, line=1)
    try:
        root = etree.fromstring(data, _parser(), base_url=str(path))
    except etree.XMLSyntaxError as e:
        line = e.lineno if hasattr(e, "lineno") else None
        msg = str(e.msg if hasattr(e, "msg") else e).split(", line")[0]
        raise FormatError(f"malformed XML: {msg}", file=path, line=line) from None
    return root


def local(tag) -> str:
    """Element tag without its namespace ('' for comments and the like)."""
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]


def confined(path: Path, root: Path, *, file=None, line=None, what="include") -> Path:
    """Return ``path`` resolved, refusing it if it lies outside ``root``."""
    rp = Path(os.path.realpath(path))
    rr = Path(os.path.realpath(root))
    if rp != rr and rr not in rp.parents:
        raise SecurityError(f"{what} '{path}' lies outside the model folder '{rr}' "
                            f"(use --include-root to allow a wider folder)", file=file, line=line)
    return rp
