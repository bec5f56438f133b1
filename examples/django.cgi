#!/usr/bin/python3
# A Django project served as a CGI script, one process per request (the
# classic flup/CGI deployment, without a long-running process): put it next
# to manage.py and point a junction cgi backend at it (django-cgi.yaml).
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')

from wsgiref.handlers import CGIHandler  # noqa: E402

from django.core.wsgi import get_wsgi_application  # noqa: E402

CGIHandler().run(get_wsgi_application())
