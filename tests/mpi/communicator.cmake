# Communicator over MPI: GoogleTest on 4 ranks, plus the hang watchdog end to end as its own program (it
# ends its job with MPI_Abort, which no GoogleTest run survives) checked by a wrapper script.
tessera_add_mpi_test(communicator_test NP 4 SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/mpi/communicator_test.cpp)

add_executable(communicator_hang ${CMAKE_CURRENT_SOURCE_DIR}/mpi/communicator_hang_main.cpp)
target_compile_options(communicator_hang PRIVATE ${TESSERA_WARNINGS})
target_link_libraries(communicator_hang PRIVATE tessera_core)
add_test(NAME communicator_watchdog_np4
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/mpi/communicator_hang_test.sh ${MPIEXEC_EXECUTABLE}
          $<TARGET_FILE:communicator_hang>)
set_tests_properties(communicator_watchdog_np4 PROPERTIES ENVIRONMENT "${TESSERA_MPI_TEST_ENV}" TIMEOUT 90
  PROCESSORS 4 LABELS mpi)
