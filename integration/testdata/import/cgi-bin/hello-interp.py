# A Python script without an exec bit or "#!" line: it runs only through
# an interpreter mapped to .py (lighttpd cgi.assign, uWSGI cgi-helper,
# junction interpreters).
import os
import sys
sys.stdout.write("Content-Type: text/plain\r\n\r\n")
sys.stdout.write("interpreted python, query=%s\n" % os.environ.get("QUERY_STRING", ""))
