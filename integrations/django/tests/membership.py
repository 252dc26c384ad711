"""Project membership for the tests: the database of a real app, in a dict."""

MEMBERS = {}  # username -> set of project ids (strings)


def user_projects(user):
    return sorted(int(p) for p in MEMBERS.get(user.get_username(), ()))


def is_member(user, project_id):
    return project_id in MEMBERS.get(user.get_username(), ())
