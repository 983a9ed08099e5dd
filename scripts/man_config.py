#!/usr/bin/env python3
"""man_config.py - fedc.conf(5), the configuration format's man page, made
from the config key table that `fedc-sim --config-doc` prints (the same
table as docs/config.md), so that the page can never disagree with the
keys the programs accept.

Usage: fedc-sim --config-doc | man_config.py VERSION > fedc.conf.5

The page: what the file is, how sections and keys are written, one
subsection per [section] with every key as a tagged paragraph (type,
default, allowed values, description), then the exit code of a bad file
and the related pages. The output is plain man(7) roff that
`groff -man -Tutf8 -ww` reads without a warning (tests/integration/test_man.sh).
"""
import re
import sys

HEAD = r""".TH FEDC.CONF 5 "" "fedc @VERSION@" "File Formats"
.SH NAME
fedc.conf \- configuration file of the fedc programs
.SH SYNOPSIS
.B fedc\-coordinator
.B \-\-config
.I FILE
.br
.B fedc\-client
.B \-\-config
.I FILE
.br
.B fedc\-sim
.B \-\-config
.I FILE
.RB [ \-\-set
.IR section.key=value ]...
.SH DESCRIPTION
Every fedc program reads the same INI job file, given with
.BR \-\-config .
A file is made of sections, each opened by a line
.BI [ section ]\fR,
holding lines
.IB key " = " value\fR.
A line starting with
.B ;
or
.B #
is a comment, as is the rest of a line after
.BR " ;" .
.PP
Options
.B \-\-set
.IB section . key = value
override the file and are applied in order after it.
An unknown section or key, a value of the wrong type or out of range is an
error whose message names the file, the line and the key; nothing is
silently ignored.
.PP
Packaged services read
.I /etc/fedc/coordinator.ini
and
.IR /etc/fedc/client.ini .
.PP
The keys follow, by section.
Each gives its type, its default and the values it allows.
"""

TAIL = r""".SH EXIT STATUS
A program given a bad file exits with status 2 and a message naming the
file, the line and the key.
.SH SEE ALSO
.BR fedc\-coordinator (8),
.BR fedc\-client (1),
.BR fedc\-sim (1),
.BR fedc\-sim\-mpi (1)
.PP
The same table, in Markdown:
.I /usr/share/doc/fedc\-sim/config.md
(or
.B fedc\-sim \-\-config\-doc\fR).
"""


def esc(text):
    """Roff-escape text from the table: backslashes, hyphens, and the code
    spans (`x`) as bold."""
    text = text.replace("\\", "\\e")
    text = text.replace("-", "\\-")
    text = re.sub(r"`([^`]*)`", r"\\fB\1\\fR", text)
    # a line that starts with . or ' would be a request
    if text[:1] in (".", "'"):
        text = "\\&" + text
    return text


def cells(line):
    # split a Markdown table row on | outside code spans
    out, cur, code = [], "", False
    for ch in line.strip()[1:-1]:
        if ch == "`":
            code = not code
        if ch == "|" and not code:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    out.append(cur.strip())
    return out


def main():
    version = sys.argv[1] if len(sys.argv) > 1 else ""
    rows = []
    for line in sys.stdin:
        if not line.startswith("| `"):
            continue
        c = cells(line)
        if len(c) != 5:
            sys.exit("man_config.py: a row without 5 cells: " + line.strip())
        rows.append(c)
    if not rows:
        sys.exit("man_config.py: no key table on stdin")
    out = [HEAD.replace("@VERSION@", version)]
    section = None
    for key, typ, default, allowed, desc in rows:
        name = key.strip("`")
        sec, _, k = name.partition(".")
        if sec != section:
            section = sec
            out.append(".SS [%s]\n" % esc(sec))
        out.append(".TP\n\\fB%s\\fR (%s, default %s)\n" % (esc(k), esc(typ), esc(default)))
        out.append("%s\n" % esc(desc))
        out.append(".br\nAllowed: %s.\n" % esc(allowed))
    out.append(TAIL)
    sys.stdout.write("".join(out))


if __name__ == "__main__":
    main()
