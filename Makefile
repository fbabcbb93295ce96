# The two README commands. Each creates .venv on first use (pinned by constraints.txt) and reuses it.
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed-stamp
export RAY_USAGE_STATS_ENABLED = 0

.PHONY: demo test test-quick

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $(STAMP)

# Main job: a small real search of every network on a local Ray, then the report (a few minutes on 2 cores).
demo: $(STAMP)
	$(VENV)/bin/tune-digits reproduce --quick

# The test suite (real MNIST, real Ray on 2 CPUs). The HTML report is checked in a real headless browser:
# Debian's chromium, installed here where missing (CI runs this as root on a fresh machine).
# The suite mostly waits (on Ray's start-up, on trials' processes, on a killed driver's restart), so it runs in
# TEST_WORKERS parallel pytest workers, more than the 2 cores; the slow tests are handed out first (conftest.py),
# and a worker that runs dry takes queued tests from a busy one (worksteal), so no worker ends up holding them.
TEST_WORKERS ?= 4
test: $(STAMP) chromium
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist worksteal

# The quick loop while working: everything but the end-to-end runs marked slow.
test-quick: $(STAMP) chromium
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist worksteal -m "not slow"

.PHONY: chromium
chromium:
	command -v chromium >/dev/null || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium)
