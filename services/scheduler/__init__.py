"""The scheduler: turns schedules into timed runs on stream RUNS.

It follows the registry's read model (``schedule.>`` and ``worklet.>`` in ``{P}_INDEX``) and
keeps one APScheduler 3 job per enabled schedule (``timetable.py``, fed by ``feed.py``); each
slot is fired by ``firing.py`` as a run with trigger ``schedule``. Any number of replicas may
run: they all fire every slot, and the slot's deterministic run id, JetStream's duplicate
window and a compare-and-set claim of each slot in ``{P}_SCHEDULER`` make each slot one run.
``main.py`` wires the process; README.md describes the choices.
"""
