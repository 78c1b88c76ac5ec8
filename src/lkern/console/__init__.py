"""The operator console (§13): one page that shows and steers every service.

A small server of its own, not a service: no database, no events. The browser
talks to it alone; it keeps the admin's tokens and passes the page's calls on
to the services' REST routes.
"""
