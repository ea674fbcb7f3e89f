# The vmgenid device for QEMU: see README.md.
#   make        fetch QEMU's Debian source, prepare the tree, build
#   make demo   boot a Linux guest and show its view of the generation ID
#   make check  every test

H := bash harness

.PHONY: all deps fetch prepare build demo check clean
all: build

deps:
	$(H)/timed.sh deps $(H)/deps.sh
fetch: deps
	$(H)/timed.sh fetch $(H)/fetch.sh
prepare: fetch
	$(H)/timed.sh prepare $(H)/prepare.sh
build: prepare
	$(H)/timed.sh build $(H)/build.sh
demo: build
	$(H)/timed.sh demo $(H)/demo.sh
check: build
	$(H)/timed.sh check $(H)/check.sh

# The change as a mailing-list patch series in series/, and a build and test
# of each of its patches in turn (slow).
.PHONY: series series-check
series: prepare
	$(H)/timed.sh series $(H)/series.sh
series-check: series
	$(H)/timed.sh series-check $(H)/series-check.sh

# The qtests that explore orders of events, longer than make check runs
# them: every sequence of 3 events and 25 random ones of 16 on pc, q35,
# microvm and virt.
.PHONY: check-sequences
check-sequences: build
	$(H)/timed.sh check-sequences $(H)/check.sh --sequences

# Keeps build/dl (the download) and ccache; everything else is rebuilt.
clean:
	rm -rf build/src build/edit build/qemu build/stripped* build/guest \
	       build/vm build/demo build/check-logs build/upstream \
	       build/series-check build/libvirt build/bench build/reduced* \
	       build/qemu-system-x86_64 build/qemu-img

# Our QEMU against upstream QEMU 10.2.2 (built in build/upstream) and
# libvirt 9.0's snapshot-revert, under TCG: BENCH_RUNS runs of each (15 by
# default, about 10 min), results in bench/results/. Not part of check; a
# one-run smoke test of it is `harness/bench.sh --smoke`.
.PHONY: bench
bench: build
	$(H)/timed.sh bench $(H)/bench.sh
