FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml ./
RUN pip install --upgrade pip && pip install .
COPY . .
RUN DJANGO_DEBUG=0 DJANGO_SECRET_KEY=build-only-collectstatic-0123456789abcdefghijklmnopqrstuv \
       python manage.py collectstatic --noinput --verbosity 0 \
    && useradd --create-home --uid 1000 crm && mkdir -p var && chown -R crm var
USER crm
EXPOSE 8000
# Threaded workers (config/gunicorn.py): WEB_CONCURRENCY processes x WEB_THREADS threads; a slow client or a
# co-pilot stream holds a thread, not a worker.
CMD ["gunicorn", "-c", "config/gunicorn.py", "--bind", "0.0.0.0:8000"]
