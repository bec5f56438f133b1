
# ---- appended by junction's integration tests (apps_django_test.go) ----
import os

DEBUG = False
ALLOWED_HOSTS = ['127.0.0.1', 'localhost']
# Every instance signs with the same key (CSRF tokens, session cookies).
SECRET_KEY = 'junction-integration-tests-shared-by-every-instance'
INSTALLED_APPS = ['django.contrib.sessions']
MIDDLEWARE = [
    'django.middleware.security.SecurityMiddleware',
    'django.contrib.sessions.middleware.SessionMiddleware',
    'django.middleware.common.CommonMiddleware',
    'django.middleware.csrf.CsrfViewMiddleware',
]
TEMPLATES = [{'BACKEND': 'django.template.backends.django.DjangoTemplates', 'OPTIONS': {}}]
DATABASES = {}
# Sessions live in each process's own memory (locmem cache): a request that
# reaches another gunicorn instance than the one holding its session finds
# none. A CGI process lives for one request, so there sessions go to files
# (examples/django-cgi.yaml sets DJANGO_SESSION_DIR).
CACHES = {'default': {'BACKEND': 'django.core.cache.backends.locmem.LocMemCache'}}
SESSION_ENGINE = 'django.contrib.sessions.backends.cache'
if os.environ.get('DJANGO_SESSION_DIR'):
    SESSION_ENGINE = 'django.contrib.sessions.backends.file'
    SESSION_FILE_PATH = os.environ['DJANGO_SESSION_DIR']
