"""Framework callbacks that report steps and data-wait to `cpuwise doctor` (or `cpuwise.watch()`).

Under the doctor they are attached by themselves (`autoattach`, run by the job's bootstrap); to use one
explicitly, import its module (each imports its framework only when used):

    from cpuwise.integrations.lightning import callback      # pl.Trainer(callbacks=[callback()])
    from cpuwise.integrations.hf import callback             # Trainer(..., callbacks=[callback()])
    from cpuwise.integrations.keras import callback          # model.fit(ds, callbacks=[callback(ds)])

Each turns the framework's batch-start / batch-end hooks into step deliveries (`clock.StepClock`): the
data-wait of a step is the time between the end of the previous batch and the start of this one
(the framework fetching the batch), and says which framework runs (for fixes in its idiom).
"""
