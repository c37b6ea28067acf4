# powerd-guest's tests: the daemon test starts the real binary, so it is an integration test with
# a tighter time limit than the default.
if(TARGET test_guest_daemon)
	set_tests_properties(test_guest_daemon PROPERTIES LABELS "integration;guest" TIMEOUT 120)
endif()
foreach(t test_guest_config test_guest_attribution)
	if(TARGET ${t})
		set_tests_properties(${t} PROPERTIES LABELS "unit;guest")
	endif()
endforeach()
