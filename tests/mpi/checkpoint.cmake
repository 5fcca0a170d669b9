tessera_add_mpi_test(checkpoint_test NP 4 SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/mpi/checkpoint_test.cpp)
# The same binary on 2 ranks.
add_test(NAME checkpoint_test_np2
  COMMAND ${MPIEXEC_EXECUTABLE} --oversubscribe ${MPIEXEC_NUMPROC_FLAG} 2 $<TARGET_FILE:checkpoint_test>)
set_tests_properties(checkpoint_test_np2 PROPERTIES ENVIRONMENT "${TESSERA_MPI_TEST_ENV}" TIMEOUT 300
  PROCESSORS 2 LABELS mpi)
