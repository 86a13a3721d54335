"""What the anchors print for scripts/bench.py besides their response."""
import sys


def print_peak_rss():
    """This process's peak resident memory (VmHWM), on stderr as `peak_rss_kb=N`: a child's
    ru_maxrss, as scripts/bench.py would see it, counts the memory its Python parent had at fork
    (see scripts/bench.py)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    print(f"peak_rss_kb={line.split()[1]}", file=sys.stderr)
    except OSError:
        pass
