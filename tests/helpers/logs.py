"""glog's line prefix (``I1207 13:45:12.123456 12345 file.py:42] ``), which ``train`` logs by default."""
import re

GLOG_PREFIX = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d{6} \d+ [^\s:]+:\d+\] ", re.MULTILINE)


def strip_glog(text: str) -> str:
    """``text`` without glog prefixes (plain lines stay as they are)."""
    return GLOG_PREFIX.sub("", text)
