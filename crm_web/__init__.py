"""The small public web app behind the links in our emails (unsubscribe first; revisit outcomes
and survey answers later). ``crm_web.app.create_app`` builds it; ``crm web`` serves it."""
