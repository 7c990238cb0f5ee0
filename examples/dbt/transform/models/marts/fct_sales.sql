{{ config(materialized='table', tags=['finance']) }}

select o.order_id, o.customer_id, sum(p.amount) as amount
from {{ ref('stg_orders') }} as o
join {{ ref('stg_payments') }} as p using (order_id)
group by 1, 2
