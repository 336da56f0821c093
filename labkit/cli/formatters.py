"""Docker's output shapes: the tabwriter's columns, ids, ports, image names, and the rows of ``ps`` and ``images``.

A command builds its rows here and prints them; :func:`render_rows` runs a
``--format`` over them (a header and aligned columns when it starts with
``table``), as ``docker ps`` and ``docker images`` do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from labkit.cli.templates import Fields, Template, go_quote, go_string
from labkit.model import humanize


def short_id(identifier: str) -> str:
    """The 12 hex characters Docker shows of an id (without ``sha256:``)."""
    return identifier.split(":", 1)[-1][:12]


def _cell_width(text: str) -> int:
    """Columns ``text`` takes on a terminal: East Asian wide characters take two."""
    if text.isascii():
        return len(text)
    import unicodedata  # only for text that is not ASCII: a table of plain ids and names never loads it

    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def tabwrite(lines: Iterable[str], minwidth: int = 10, padding: int = 3) -> str:
    """Align tab-separated cells into columns as Docker's tabwriter does.

    Every cell but the last of a line belongs to a column whose width is the
    widest cell plus ``padding``, and at least ``minwidth``; the last cell is
    written as it is, so lines carry no trailing spaces.

    Args:
        lines: Lines whose cells are separated by ``\\t``.
        minwidth: The narrowest a column may be (padding included).
        padding: Spaces added to the widest cell of a column.

    Returns:
        The aligned text, one ``\\n`` after each line.
    """
    rows = [line.split("\t") for line in lines]
    widths: list[int] = []
    for row in rows:
        for index, cell in enumerate(row[:-1]):
            width = max(minwidth, _cell_width(cell) + padding)
            if index == len(widths):
                widths.append(width)
            else:
                widths[index] = max(widths[index], width)
    out = []
    for row in rows:
        cells = [cell + " " * (widths[i] - _cell_width(cell)) for i, cell in enumerate(row[:-1])]
        out.append("".join(cells) + row[-1] + "\n")
    return "".join(out)


def ellipsis(text: str, width: int) -> str:
    """Cut ``text`` to ``width`` columns, ending in ``…`` when something was cut."""
    if _cell_width(text) <= width:
        return text
    kept, used = [], 0
    for ch in text:
        used += _cell_width(ch)
        if used > width - 1:
            break
        kept.append(ch)
    return "".join(kept) + "…"


def _join_host_port(host: str, port: Any) -> str:
    """``host:port``, with an IPv6 host in brackets (``[::]:8080``)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _ip_order(ip: str) -> tuple[int, int]:
    """Sort key for an address: none first, then IPv4, then IPv6."""
    if not ip:
        return (0, 0)
    import ipaddress  # only when there are ports to order: off the path of --help and of most commands

    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return (9, 0)
    return (address.version, int(address))


def display_ports(ports: Sequence[Mapping[str, Any]] | None) -> str:
    """The PORTS column: ``0.0.0.0:8080->80/tcp, [::]:8080->80/tcp`` or ``80/tcp``.

    Ports published on the same address and number inside and out, and
    consecutive, are grouped into ranges (``0.0.0.0:8000-8001->8000-8001/tcp``);
    ports published under a different number are listed after them.
    """
    ordered = sorted(
        ports or [],
        key=lambda p: (p.get("PrivatePort", 0), _ip_order(p.get("IP", "")), p.get("PublicPort", 0), p.get("Type", "")),
    )
    groups: dict[str, list[int]] = {}
    result: list[str] = []
    mappings: list[str] = []

    def form(key: str, first: int, last: int) -> str:
        ip, _, kind = key.rpartition("/")
        span = str(first) if first == last else f"{first}-{last}"
        return f"{_join_host_port(ip, span)}->{span}/{kind}" if ip else f"{span}/{kind}"

    for port in ordered:
        current = port.get("PrivatePort", 0)
        kind = port.get("Type", "tcp")
        key = kind
        if port.get("IP"):
            if port.get("PublicPort") != current:
                where = _join_host_port(port["IP"], port.get("PublicPort"))
                mappings.append(f"{where}->{current}/{kind}")
                continue
            key = f"{port['IP']}/{kind}"
        group = groups.get(key)
        if group is None:
            groups[key] = [current, current]
        elif current == group[1] + 1:
            group[1] = current
        else:
            result.append(form(key, *group))
            groups[key] = [current, current]
    result.extend(form(key, *group) for key, group in groups.items())
    return ", ".join(result + mappings)


def full_image_ref(image: str) -> str:
    """``busybox`` → ``busybox:latest``; a reference with a tag or digest is kept."""
    last = image.rsplit("/", 1)[-1]
    return image if (":" in last or "@" in image) else f"{image}:latest"


def split_repo_tag(ref: str) -> tuple[str, str]:
    """``registry:5000/app:1.0`` → (``registry:5000/app``, ``1.0``)."""
    head, _, last = ref.rpartition("/")
    if ":" in last:
        name, tag = last.rsplit(":", 1)
        return (f"{head}/{name}" if head else name), tag
    return ref, "<none>"


def _table_format(fmt: str) -> tuple[bool, str]:
    """Split Docker's ``table`` prefix off a format and turn ``\\t``/``\\n`` into real ones."""
    table = fmt.startswith("table")
    body = fmt[len("table") :] if table else fmt
    body = body.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    return table, body


def render_rows(fmt: str, rows: list[Fields], headers: Mapping[str, str], kind: str) -> str:
    """Render a ``--format`` over rows: a header and aligned columns if it starts with ``table``;
    ``json``, one JSON object a line (Docker's ``{{json .}}``)."""
    if fmt.strip() == "json":
        fmt = "{{json .}}"
    table, body = _table_format(fmt)
    template = Template(body)
    lines = [template.render(row) for row in rows]
    if not table:
        return "".join(line + "\n" for line in lines)
    header = Fields(headers)
    header.kind = kind
    return tabwrite([template.render(header)] + lines)


def unix_time_text(seconds: float) -> str:
    """Go's ``time.Time.String()`` in local time: ``2024-05-01 12:00:00 +0000 UTC``."""
    from datetime import datetime  # only when a row is shown: off the path of --help and of every other command

    return datetime.fromtimestamp(seconds).astimezone().strftime("%Y-%m-%d %H:%M:%S %z %Z")


PS_HEADERS = {
    "ID": "CONTAINER ID",
    "Names": "NAMES",
    "Image": "IMAGE",
    "Command": "COMMAND",
    "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED",
    "Ports": "PORTS",
    "State": "STATE",
    "Status": "STATUS",
    "Size": "SIZE",
    "Labels": "LABELS",
    "Mounts": "MOUNTS",
    "Networks": "NETWORKS",
}
PS_TABLE = "table {{.ID}}\\t{{.Image}}\\t{{.Command}}\\t{{.RunningFor}}\\t{{.Status}}\\t{{.Ports}}\\t{{.Names}}"


def _size_text(item: Mapping[str, Any]) -> str:
    """``ps -s``'s SIZE: the writable layer's, then ``(virtual …)`` with the image's, as docker/cli's
    ``Size()`` writes them (go-units' HumanSizeWithPrecision, 3 digits)."""
    rw = humanize.human_size(item.get("SizeRw", 0), 3)
    if "SizeRootFs" in item:
        return f"{rw} (virtual {humanize.human_size(item['SizeRootFs'], 3)})"
    return rw


def ps_fields(item: Mapping[str, Any], trunc: bool, now: float) -> Fields:
    """The fields a ``ps`` row offers to its template, computed as ``docker ps`` does."""
    names = [n[1:] if n.startswith("/") else n for n in item.get("Names") or []]
    if trunc:
        name = next((n for n in names if "/" not in n), "")
    else:
        name = ",".join(names)
    image = item.get("Image") or "<no image>"
    if trunc and image.startswith("sha256:"):
        image = short_id(image)
    command = item.get("Command", "")
    labels = item.get("Labels") or {}
    mounts = [m.get("Name") or m.get("Source", "") for m in item.get("Mounts") or []]
    networks = ((item.get("NetworkSettings") or {}).get("Networks")) or {}
    created = item.get("Created", 0)
    return Fields(
        ID=short_id(item.get("Id", "")) if trunc else item.get("Id", ""),
        Names=name,
        Image=image,
        Command=go_quote(ellipsis(command, 20) if trunc else command),
        CreatedAt=unix_time_text(created),
        RunningFor=humanize.human_duration(now - created) + " ago",
        Ports=display_ports(item.get("Ports")),
        State=item.get("State", ""),
        Status=item.get("Status", ""),
        Size=_size_text(item),
        Labels=",".join(sorted(f"{k}={v}" for k, v in labels.items())),
        Mounts=",".join(ellipsis(m, 15) if trunc else m for m in mounts),
        Networks=",".join(networks),
    )


NETWORK_HEADERS = {
    "ID": "NETWORK ID",
    "Name": "NAME",
    "Driver": "DRIVER",
    "Scope": "SCOPE",
    "IPv6": "IPV6",
    "Internal": "INTERNAL",
    "Labels": "LABELS",
    "CreatedAt": "CREATED AT",
}
NETWORK_TABLE = "table {{.ID}}\\t{{.Name}}\\t{{.Driver}}\\t{{.Scope}}"


def network_fields(item: Mapping[str, Any], trunc: bool) -> Fields:
    """The fields a ``network ls`` row offers to its template, as ``docker network ls`` computes them."""
    labels = item.get("Labels") or {}
    return Fields(
        ID=short_id(item.get("Id", "")) if trunc else item.get("Id", ""),
        Name=item.get("Name", ""),
        Driver=item.get("Driver", ""),
        Scope=item.get("Scope", "local"),
        IPv6=go_string(bool(item.get("EnableIPv6"))),
        Internal=go_string(bool(item.get("Internal"))),
        Labels=",".join(sorted(f"{k}={v}" for k, v in labels.items())),
        CreatedAt=item.get("Created", ""),
    )


VOLUME_HEADERS = {
    "Name": "VOLUME NAME",
    "Driver": "DRIVER",
    "Scope": "SCOPE",
    "Mountpoint": "MOUNTPOINT",
    "Labels": "LABELS",
    "Links": "LINKS",
    "Size": "SIZE",
}
VOLUME_TABLE = "table {{.Driver}}\\t{{.Name}}"


def volume_fields(item: Mapping[str, Any]) -> Fields:
    """The fields a ``volume ls`` row offers to its template; Links and Size are ``N/A`` as Docker's list
    (without ``system df``) shows them."""
    labels = item.get("Labels") or {}
    return Fields(
        Name=item.get("Name", ""),
        Driver=item.get("Driver", "local"),
        Scope=item.get("Scope", "local"),
        Mountpoint=item.get("Mountpoint", ""),
        Labels=",".join(sorted(f"{k}={v}" for k, v in labels.items())),
        Links="N/A",
        Size="N/A",
    )


IMAGE_HEADERS = {
    "Repository": "REPOSITORY",
    "Tag": "TAG",
    "Digest": "DIGEST",
    "ID": "IMAGE ID",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "Size": "SIZE",
}
IMAGE_TABLE = "table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}\\t{{.CreatedSince}}\\t{{.Size}}"
#: ``images --digests``: the same with the registry digest, which no image of labkit's has (``<none>``).
IMAGE_DIGESTS_TABLE = "table {{.Repository}}\\t{{.Tag}}\\t{{.Digest}}\\t{{.ID}}\\t{{.CreatedSince}}\\t{{.Size}}"
