# Two entry points for a fresh machine: `make up` and `make test`. Everything else is CMake.
BUILD ?= build
BUILD_TYPE ?= RelWithDebInfo
WERROR ?= OFF
JOBS ?= 2

.PHONY: up test bench deps build clean format

up: build
	bash scripts/up

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
