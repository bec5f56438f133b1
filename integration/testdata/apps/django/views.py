"""The test application: a form (CSRF protected) whose POST stores a name
in the session and redirects with a relative Location to a page that
greets from the session and counts the visits."""

from django.http import HttpResponse, HttpResponseRedirect
from django.template import engines
from django.views.decorators.http import require_GET, require_http_methods

FORM = engines['django'].from_string(
    '<!doctype html>\n<title>name</title>\n'
    '<form method="post" action="">{% csrf_token %}'
    '<input name="name"><button>save</button></form>\n')


@require_http_methods(['GET', 'POST'])
def form(request):
    if request.method == 'POST':
        name = request.POST.get('name', '')
        if not name:
            return HttpResponse('name required\n', status=400, content_type='text/plain')
        request.session['name'] = name
        request.session['visits'] = 0
        return HttpResponseRedirect('../page/')
    return HttpResponse(FORM.render({}, request))


@require_GET
def page(request):
    name = request.session.get('name')
    if name is None:
        return HttpResponse('no session\n', content_type='text/plain')
    request.session['visits'] = request.session.get('visits', 0) + 1
    return HttpResponse('hello %s, visit %d\n' % (name, request.session['visits']),
                        content_type='text/plain')
