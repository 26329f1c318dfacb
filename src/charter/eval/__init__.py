"""`charter eval`: measure any assistant behind an OpenAI-compatible endpoint.

Suites are data (JSONL shipped in ``charter/eval/suites``, or a user's own file); scorers
explain every verdict; the runner is resumable; reports pair each rate with its interval;
the gate turns a run into a release decision. See docs/evaluation.md.
"""
