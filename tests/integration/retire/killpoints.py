# SPDX-License-Identifier: LGPL-2.1-or-later
"""killpoints.py — where test_crash.py kills hotplugd with SIGKILL during a retire of node 2 (default_retire_spec
with block 40 offline before the retire; drain order 39 38 ... 32), and what must follow the restart.

The daemon is frozen at a known point first, by the fake kernel: a "stop" control (SIGSTOP right after the
Nth event of a kind, see tests/fakekernel/fakekernel.c), or a ".block" control that holds a state write
in the kernel. In one retire the journal is saved: #1 drain started, #2 39 offlining, #3 39 offlined, #4 38
offlining, ..., #(2k+1) k blocks offlined, #(2k+2) and the next offlining, #17 all 8 offlined, #18 phase
eject, #19 phase verify.

Fields: id; on_crash (OnCrash=); conf (more [Retire] settings); arm (fake-kernel controls before the retire);
freeze ("stop", spec), ("held", block) or ("log", text: a shim log line containing it); phase (of the journal
when frozen); between (actions after the kill: "unhold", ("control", name, text|None), "release-ejects",
("corrupt", how), ("refreeze", freeze) = restart, freeze again there and kill once more); after_restart (actions
once the final daemon runs); outcome:
"restored" (every block back in its zone, tree byte-identical, job failed and says it was interrupted),
"retired" (node 2 and its blocks gone, job completed and says it was interrupted), "refused" (damaged
journal: renamed *.corrupt, no job, nothing written). spec "mixed" is mixed_zone_spec() (Normal and Movable
blocks, drain order 39 38 36 35 34 37 33 32); policy is the [Online] Policy=; kill "term" stops the daemon
with SIGTERM instead (systemctl stop), which must leave the same journal behind.
"""

FAIL35 = {"memory35.fail": "-16 inf\n"}


def kp(id, outcome, freeze, on_crash="rollback", phase=None, conf=None, arm=None, between=(), after_restart=(),
       spec="default", policy="offline", kill="kill"):
    return dict(id=id, outcome=outcome, freeze=freeze, on_crash=on_crash, phase=phase, conf=conf or {}, arm=arm or {},
                between=list(between), after_restart=list(after_restart), spec=spec, policy=policy, kill=kill)


KILL_POINTS = [
    # OnCrash=rollback, during the drain: right after journal saves, with writes held, after a write took.
    kp("rb-journal-1", "restored", ("stop", "journal 1"), phase="drain"),
    kp("rb-journal-2", "restored", ("stop", "journal 2"), phase="drain"),
    kp("rb-journal-3", "restored", ("stop", "journal 3"), phase="drain"),
    kp("rb-journal-8", "restored", ("stop", "journal 8"), phase="drain"),
    kp("rb-journal-9", "restored", ("stop", "journal 9"), phase="drain"),
    kp("rb-journal-14", "restored", ("stop", "journal 14"), phase="drain"),
    kp("rb-journal-17", "restored", ("stop", "journal 17"), phase="drain"),
    kp("rb-held-first", "restored", ("held", 39), phase="drain", arm={"memory39.block": "offline\n"}, between=["unhold"]),
    kp("rb-held-fifth", "restored", ("held", 35), phase="drain", arm={"memory35.block": "offline\n"}, between=["unhold"]),
    kp("rb-held-last", "restored", ("held", 32), phase="drain", arm={"memory32.block": "offline\n"}, between=["unhold"]),
    kp("rb-write-took-3", "restored", ("stop", "write-end 3 offline 0"), phase="drain"),
    kp("rb-quarantined", "restored", ("stop", "quarantine 1"), phase="drain"),
    # OnCrash=rollback, during a rollback (memory35 never goes offline, Retries=0).
    kp("rb-rollback-journal", "restored", ("stop", "journal 1 phase=rollback"), phase="rollback", conf={"Retries": "0"},
       arm=FAIL35),
    kp("rb-rollback-held", "restored", ("held", 38), phase="rollback", conf={"Retries": "0"},
       arm=dict(FAIL35, **{"memory38.block": "online\n"}), between=["unhold"]),
    kp("rb-rollback-one-restored", "restored", ("stop", "write-end 1 online_movable 0"), phase="rollback",
       conf={"Retries": "0"}, arm=FAIL35),
    # The eject: issued, not taken back, whatever OnCrash says.
    kp("eject-journaled", "retired", ("stop", "journal 1 phase=eject"), phase="eject"),
    kp("eject-written", "retired", ("stop", "eject 1"), phase="eject", arm={"eject": "never"},
       after_restart=[("control", "eject", None)]),
    kp("eject-done-while-down", "retired", ("stop", "journal 1 phase=verify"), phase="verify", arm={"eject": "never"},
       between=["release-ejects"]),
    # OnCrash=resume.
    kp("rs-journal-6", "retired", ("stop", "journal 6"), on_crash="resume", phase="drain"),
    kp("rs-held-fifth", "retired", ("held", 35), on_crash="resume", phase="drain", arm={"memory35.block": "offline\n"},
       between=["unhold"]),
    kp("rs-write-took-3", "retired", ("stop", "write-end 3 offline 0"), on_crash="resume", phase="drain"),
    kp("rs-journal-17", "retired", ("stop", "journal 17"), on_crash="resume", phase="drain"),
    kp("rs-rollback-held", "restored", ("held", 38), on_crash="resume", phase="rollback", conf={"Retries": "0"},
       arm=dict(FAIL35, **{"memory38.block": "online\n"}), between=["unhold"]),
    kp("rs-eject-waiting", "retired", ("stop", "journal 1 phase=verify"), on_crash="resume", phase="verify",
       arm={"eject": "never"}, after_restart=[("control", "eject", None)]),
    # Damaged journals: refused, kept as *.corrupt, nothing done with them.
    kp("corrupt-truncated", "refused", ("stop", "journal 9"), phase="drain", between=[("corrupt", "truncate")]),
    kp("corrupt-flipped", "refused", ("stop", "journal 9"), phase="drain", between=[("corrupt", "flip")]),
    kp("corrupt-empty", "refused", ("stop", "journal 9"), phase="drain", between=[("corrupt", "empty")]),
    # Blocks of both zones: each goes back into its own (online_kernel for Normal ones).
    kp("rb-mixed-zones", "restored", ("stop", "journal 13"), phase="drain", spec="mixed"),
    # An onlining policy at the restart must not get to the drained blocks before the recovery does.
    kp("rb-policy-online-movable", "restored", ("stop", "journal 13"), phase="drain", spec="mixed", policy="online_movable"),
    kp("rs-policy-online-movable", "retired", ("stop", "journal 13"), on_crash="resume", phase="drain", spec="mixed",
       policy="online_movable"),
    # systemctl stop during a held write: SIGTERM, not SIGKILL.
    kp("term-held-fifth", "restored", ("held", 35), phase="drain", arm={"memory35.block": "offline\n"}, between=["unhold"],
       kill="term"),
    kp("term-rollback-held", "restored", ("held", 38), phase="rollback", conf={"Retries": "0"},
       arm=dict(FAIL35, **{"memory38.block": "online\n"}), between=["unhold"], kill="term"),
    kp("term-eject-waiting", "retired", ("log", "phase=verify"), phase="verify", arm={"eject": "never"}, kill="term",
       after_restart=[("control", "eject", None)]),
    # Crashes during the recovery itself.
    kp("recovery-held", "restored", ("stop", "journal 9"), phase="drain",
       between=[("control", "memory37.block", "online\n"), ("refreeze", ("held", 37)), "unhold"]),
    # The recovering daemon dies right after its first journal save (the rollback phase): the
    # record it recovers from is never removed before the job ends, so a second restart finds it.
    kp("recovery-journal-kept", "restored", ("stop", "journal 9"), phase="drain",
       between=[("control", "stop", "journal 1\n"), ("refreeze", ("stop", None)), ("control", "stop", None)]),
]

IDS = [k["id"] for k in KILL_POINTS]
assert len(IDS) == len(set(IDS))
