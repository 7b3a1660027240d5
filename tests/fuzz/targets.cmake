# The fuzz targets and the libraries each one's code lives in: one list for the clang fuzz
# build (tests/fuzz/CMakeLists.txt) and the gcc replay of its inputs (tests/CMakeLists.txt).
set(BW_FUZZ_TARGETS stripe_sig usage_event stripe_event sync_tick)
set(BW_FUZZ_LIBS_stripe_sig bw_shared)
set(BW_FUZZ_LIBS_usage_event bw_usage_logic)
set(BW_FUZZ_LIBS_stripe_event bw_stripe_logic)
set(BW_FUZZ_LIBS_sync_tick bw_sync_logic)
# stripe_event also reads the body as the webhook ingress does (ingress_event.c). The fuzz
# build compiles that one file into the target (SOURCES); the replay links the ingress library
# it belongs to (REPLAY_LIBS). bw_ingress_logic is not linked in the fuzz build: its HTTP half
# (libmicrohttpd) is not fuzzed.
set(BW_FUZZ_SOURCES_stripe_event
  ${CMAKE_CURRENT_LIST_DIR}/../../workers/webhook_ingress/ingress_event.c)
set(BW_FUZZ_INCLUDES_stripe_event ${CMAKE_CURRENT_LIST_DIR}/../../workers/webhook_ingress)
set(BW_FUZZ_REPLAY_LIBS_stripe_event bw_ingress_logic)
