# Two commands on a fresh machine:  `make demo` (the main job) and `make test`.
# Each creates .venv and installs everything on first use; re-running skips what is up to date.

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
DEPS_STAMP := $(VENV)/.deps-installed
PKG_STAMP := $(VENV)/.package-installed
PACKAGE_SOURCES := $(shell find hand_object_pose_ros launch config models resource -type f \
	-not -name '*.pyc' 2>/dev/null) setup.py setup.cfg package.xml

.PHONY: venv install test lint demo benchmark clean

venv: $(DEPS_STAMP)

$(DEPS_STAMP): requirements.txt
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	@# torch first, at the versions that lie on this machine's disk (a CUDA build that runs on CPU).
	$(VPY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(VPY) -m pip install --quiet -r requirements.txt
	@touch $@

# A regular (not editable) install: an editable one installs no data_files, so the ament index
# (share/ament_index, lib/hand_object_pose_ros) would not see the package.
$(PKG_STAMP): $(DEPS_STAMP) $(PACKAGE_SOURCES)
	$(VPY) -m pip install --quiet --no-deps --no-build-isolation .
	@touch $@

install: $(PKG_STAMP)

test: install
	bash scripts/run_tests.sh

lint: install
	bash scripts/run_tests.sh test/test_lint.py

demo: install
	bash scripts/ros_env.sh $(VPY) -m hand_object_pose_ros.ros.demo $(DEMO_ARGS)

benchmark: install
	bash scripts/ros_env.sh $(VPY) -m hand_object_pose_ros.benchmark $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info demo_output
