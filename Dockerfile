# The TradeOps Airflow image: the official Airflow 3.3.2 image plus exactly the locked dependencies.
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:root requirements.txt /opt/airflow/requirements.txt
RUN pip install --no-cache-dir --no-deps -r /opt/airflow/requirements.txt && pip check
