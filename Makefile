# Two entry points for a fresh machine: `make up` and `make test`. Everything else is CMake.
# `make up` leaves ork-host serve (web UI on http://127.0.0.1:4000/) running; `make down` stops it.
BUILD ?= build
BUILD_TYPE ?= RelWithDebInfo
WERROR ?= OFF
JOBS ?= 2

.PHONY: up down ui test bench deps build clean format

up: build
	bash scripts/up

down:
	bash scripts/down

ui:
	bash scripts/build-ui $(BUILD)/share/ork/ui

test: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

bench: build
	bash bench/all.sh $(BUILD)

deps:
	bash scripts/install-deps

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DORK_WERROR=$(WERROR)
	cmake --build $(BUILD) -j$(JOBS)

format:
	git ls-files '*.cpp' '*.hpp' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD)
