"""Shared contracts and plumbing for the Outbound services.

Only what several services genuinely share lives here: the event envelope and event models
(the contract between services), topic names, the clock, ids, settings, logging, metrics,
Kafka/MongoDB factories, and the phone/calling-window rules that both the planner and the
dialer's last-moment guard need.
"""
