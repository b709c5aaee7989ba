"""The online engine: rows go to the service one request at a time, through N workers.

job.py     OnlineJob: produce (the reader thread fills a bounded queue), work, split refused batches
router.py  build_router: one Deployment (URL, auth, pacer) per deployment of the spec
engine.py  run_online_job: session, router, client, and the tasks that drive the job to its end
"""
