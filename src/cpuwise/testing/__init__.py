"""Fakes and contract checks that cpuwise's own tests use, and that users can run on their own code.

Import the module you need; this package imports nothing itself:
    cpuwise.testing.stages   check_stage_resume: the resume contract every pipeline stage passes
    cpuwise.testing.passes   the contract every optimize pass passes
    cpuwise.testing.recordings   realistic synthetic doctor recordings (for rules and reports)
    cpuwise.testing.rules    check_rule: the contract every doctor rule passes, and its cases
    cpuwise.testing.verdicts accepted: judge a verdict on a real job on a shared machine
    cpuwise.testing.scale    measure_scale: the doctor's memory and report time on a job of many steps
"""
