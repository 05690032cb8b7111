# depthtracker: the two commands of the README and what they rest on. Every target is idempotent.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.setup-stamp
# rclpy writes logs under ~/.ros by default; keep them in the build tree.
export ROS_LOG_DIR ?= $(CURDIR)/build/ros_log

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

# OpenCV: only the contrib build (CSRT/KCF trackers); an older venv may hold the plain headless build, which shares
# the cv2 folder, so it is removed first and contrib reinstalled if that left cv2 broken.
$(STAMP): requirements/*.txt src/depthtracker/setup.py src/depthtracker_msgs/CMakeLists.txt src/depthtracker_msgs/msg/*.msg tools/build_msgs.py
	@start=$$(date +%s); \
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || { echo "setup: needs $(PYTHON) (the ROS 2 Kilted wheels are cp311)"; exit 1; }; \
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0 && \
	{ $(PY) -m pip uninstall -q -y opencv-python-headless opencv-python 2>/dev/null || true; } && \
	$(PY) -m pip install -q --disable-pip-version-check -r requirements/lock.txt && \
	{ $(PY) -c "import cv2; cv2.TrackerCSRT_create" 2>/dev/null || \
	  $(PY) -m pip install -q --disable-pip-version-check --force-reinstall --no-deps \
	    $$(grep '^opencv-contrib-python-headless==' requirements/lock.txt); } && \
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -r requirements/nodeps.txt && \
	$(PY) tools/build_msgs.py && \
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e src/depthtracker && \
	touch $(STAMP) && echo "setup: done in $$(( $$(date +%s) - start )) s"

demo: setup
	$(VENV)/bin/depthtracker demo --out out/demo

test: setup
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check src test bench tools

bench: setup
	$(PY) bench/synth.py

clean:
	rm -rf build install log out
