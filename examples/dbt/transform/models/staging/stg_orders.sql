select id as order_id, customer_id, status
from {{ ref('raw_orders') }}
